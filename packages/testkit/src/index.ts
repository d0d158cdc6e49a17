export { systemTestGate, systemTestsRequired, missingRequirements } from './system.js';
export type { SystemRequirement } from './system.js';
