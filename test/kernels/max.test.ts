import { describeOp } from './op-suite.js';

describeOp('max');
