export { PinholeController, isSetIntent } from './controller.js';
export type {
  ControlEvent,
  ControlLogger,
  ControlMetrics,
  Execution,
  FailMode,
  FcpMethod,
  FcpPort,
  FcpPortOutcome,
  FcpPortResult,
  HoldOptions,
  HoldVerdict,
  PinholeControllerOptions,
  PinholeOutcome,
} from './controller.js';
export { toFcpPme } from './pme.js';
export type { FcpPmeInput } from './pme.js';
export { ControlError, ControlErrorCode } from './errors.js';
