export { systemTestGate, systemTestsRequired, missingRequirements } from './system.js';
export type { SystemRequirement } from './system.js';
export {
  Netns,
  NetnsError,
  cleanupNetns,
  createNetns,
  createRoutedTopology,
  enableForwarding,
  liveNetns,
  randomName,
  run,
  vethPair,
} from './netns.js';
export type { ExecResult, RoutedTopology, VethEnd } from './netns.js';
export { UdpAgent, eventually, udpReaches } from './udp-agent.js';
export type { UdpMessage } from './udp-agent.js';
export { JsonLogProcess } from './json-log-process.js';
export type { JsonLogProcessOptions, LogLine } from './json-log-process.js';
export { sipp } from './sipp.js';
export type { SippResult } from './sipp.js';
export { holeCount, countHoles, sleep } from './nft.js';
