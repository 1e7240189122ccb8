/** Elementwise unary functions and their derivatives. */
import type { Storage, UnaryKind } from '../backend.js';
import { arr } from './storage.js';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

export function unaryValue(kind: UnaryKind, x: number): number {
  switch (kind) {
    case 'neg': return -x;
    case 'exp': return Math.exp(x);
    case 'log': return Math.log(x);
    case 'sqrt': return Math.sqrt(x);
    case 'rsqrt': return 1 / Math.sqrt(x);
    case 'tanh': return Math.tanh(x);
    case 'sigmoid': return sigmoid(x);
    case 'relu': return Number.isNaN(x) ? x : Math.max(0, x);
    case 'silu': return x * sigmoid(x);
    // GELU, tanh approximation (Hendrycks & Gimpel 2016, eq. after §2), as GPT-2 uses
    case 'gelu': return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x)));
    case 'abs': return Math.abs(x);
    case 'square': return x * x;
  }
}

/** f'(x), given y = f(x). */
export function unaryDerivative(kind: UnaryKind, x: number, y: number): number {
  switch (kind) {
    case 'neg': return -1;
    case 'exp': return y;
    case 'log': return 1 / x;
    case 'sqrt': return 0.5 / y;
    case 'rsqrt': return -0.5 * y * y * y;
    case 'tanh': return 1 - y * y;
    case 'sigmoid': return y * (1 - y);
    case 'relu': return Number.isNaN(x) ? x : x > 0 ? 1 : 0;
    case 'silu': {
      const s = sigmoid(x);
      return s * (1 + x * (1 - s));
    }
    case 'gelu': {
      const t = Math.tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_C * x * x);
    }
    case 'abs': return Number.isNaN(x) ? x : x > 0 ? 1 : x < 0 ? -1 : 0;
    case 'square': return 2 * x;
  }
}

// x [n] → out [n]
export function unary(kind: UnaryKind, x: Storage, out: Storage, n: number): void {
  const xs = arr(x), o = arr(out);
  for (let i = 0; i < n; i++) o[i] = unaryValue(kind, xs[i]!);
}

// x, y, g [n] → gx [n]
export function unaryBackward(kind: UnaryKind, x: Storage, y: Storage, g: Storage, gx: Storage, n: number): void {
  const xs = arr(x), ys = arr(y), gs = arr(g), o = arr(gx);
  for (let i = 0; i < n; i++) o[i] = gs[i]! * unaryDerivative(kind, xs[i]!, ys[i]!);
}
