// The dashboard: a hash router over the API (#/, #/runs/<id>, #/pipelines/<id>) that refreshes
// the page it shows every few seconds while something runs.
import { AuthError, get, token } from './api.js';
import { el } from './dom.js';
import { renderPipeline } from './pipeline.js';
import { renderRun } from './run.js';
import { renderRuns } from './runs.js';

const REFRESH_MS = 5000;
const view = document.getElementById('view');
let timer = null;
let onlineRecipes = null;
let shown = 0; // which call of show() may still put its page in: only the latest

function askForToken(message) {
  const form = document.getElementById('token-form').content.firstElementChild.cloneNode(true);
  if (message) form.querySelector('[data-role=error]').textContent = message;
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    token.set(form.elements.token.value.trim());
    form.reset(); // the token does not stay in the page
    show();
  });
  view.replaceChildren(form);
  document.getElementById('sign-out').hidden = true;
}

async function recipeKinds() {
  onlineRecipes ??= get('/recipes').then((r) => new Set(r.recipes.filter((x) => x.kind === 'online').map((x) => x.name)));
  return onlineRecipes.catch((e) => {
    onlineRecipes = null; // asked again next time
    throw e;
  });
}

async function show() {
  clearTimeout(timer);
  if (!token.get()) return askForToken();
  document.getElementById('sign-out').hidden = false;
  const [, kind, id] = (location.hash.replace(/^#/, '') || '/').split('/').map(decodeURIComponent);
  const mine = ++shown;
  // Each page is built off-screen and put in only if no later navigation has started meanwhile.
  const page = el('div');
  const place = () => {
    if (mine !== shown) return false;
    view.replaceChildren(...page.childNodes);
    document.body.dataset.loaded = String(Date.now()); // the browser test waits on this
    return true;
  };
  try {
    let again = false;
    if (kind === 'runs' && id) {
      const v = await renderRun(page, id, { onlineRecipes: await recipeKinds(), refresh: show });
      again = v.state === 'RUNNING';
    } else if (kind === 'pipelines' && id) {
      await renderPipeline(page, id);
      again = true;
    } else {
      await renderRuns(page);
      again = true;
    }
    if (place() && again) timer = setTimeout(show, REFRESH_MS);
  } catch (e) {
    if (mine !== shown) return;
    if (e instanceof AuthError) {
      token.clear();
      return askForToken(e.message);
    }
    page.replaceChildren(el('div', { class: 'notice bad', 'data-role': 'error' }, e.message), el('p', {}, el('a', { href: '#/' }, 'back to the runs')));
    if (place()) timer = setTimeout(show, REFRESH_MS);
  }
}

document.getElementById('sign-out').addEventListener('click', () => {
  token.clear();
  show();
});
window.addEventListener('hashchange', show);
show();
