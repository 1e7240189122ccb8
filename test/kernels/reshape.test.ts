import { describeOp } from './op-suite.js';

describeOp('reshape');
