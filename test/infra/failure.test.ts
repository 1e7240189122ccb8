/** What `align status` says about a failure: the failing activity's own message (naming endpoint and object), with the raw cause appended. */
import { ActivityFailure, ApplicationFailure, RetryState } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { describeFailure } from '../../infra/runs.js';

const activityFailure = (cause: Error) => new ActivityFailure('Activity task failed', 'trainChunk', '7', RetryState.MAXIMUM_ATTEMPTS_REACHED, 'worker-1', cause);
const workflowFailure = (cause: Error) => new WorkflowFailedError('Workflow execution failed', cause, RetryState.NON_RETRYABLE_FAILURE);

describe('describeFailure', () => {
  it('a store outage shows the store\'s message (endpoint, object), not only the raw connect error', () => {
    const raw = ApplicationFailure.create({ message: 'connect ECONNREFUSED 127.0.0.1:7570', type: 'Error' });
    const store = ApplicationFailure.create({ message: 'S3 endpoint http://127.0.0.1:7570 is unreachable (ECONNREFUSED) during put s3://ckpt/runs/r/checkpoints/8/model.safetensors', type: 'StoreError', cause: raw });
    const view = describeFailure(workflowFailure(activityFailure(store)));
    expect(view).toMatchObject({
      type: 'StoreError', activity: 'trainChunk',
      message: 'S3 endpoint http://127.0.0.1:7570 is unreachable (ECONNREFUSED) during put s3://ckpt/runs/r/checkpoints/8/model.safetensors (cause: connect ECONNREFUSED 127.0.0.1:7570)',
    });
    expect(view.chain.map((c) => c.type)).toEqual(['ActivityFailure', 'StoreError', 'Error']);
  });

  it('a data error with no deeper cause is shown as it is', () => {
    const data = ApplicationFailure.create({ message: 'train.jsonl:7: missing key "output"', type: 'DataError', nonRetryable: true });
    expect(describeFailure(workflowFailure(activityFailure(data)))).toMatchObject({ type: 'DataError', message: 'train.jsonl:7: missing key "output"', activity: 'trainChunk' });
  });

  it('a cause whose text the message already holds is not repeated', () => {
    const raw = ApplicationFailure.create({ message: 'ENOSPC', type: 'Error' });
    const full = ApplicationFailure.create({ message: 'put file:///s/k: no space left on the device (ENOSPC)', type: 'StoreError', cause: raw });
    expect(describeFailure(workflowFailure(activityFailure(full))).message).toBe('put file:///s/k: no space left on the device (ENOSPC)');
  });
});
