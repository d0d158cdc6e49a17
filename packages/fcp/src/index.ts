export type {
  FirewallBackend,
  FirewallRule,
  InstalledRule,
  IpPrefix,
  PortRange,
  RuleMeta,
} from './backend.js';
