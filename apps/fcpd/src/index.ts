export { startFcpd, serverConfigOf } from './daemon.js';
export type { FcpdHandle, StartOptions } from './daemon.js';
export {
  FcpdConfigError,
  USAGE,
  checkCidr,
  parseCli,
  parseEndpoint,
  parsePortRange,
  validateFcpdConfig,
} from './config.js';
export type {
  BackendName,
  CliOptions,
  FcpdConfig,
  MetricsConfig,
  NftConfig,
  TlsMaterial,
} from './config.js';
export { NftablesBackend, DEFAULT_MARK, commandNetns } from './nftables-backend.js';
export type { BackendLogger, NftChannelKind, NftablesBackendOptions } from './nftables-backend.js';
export { NetlinkChannel, builtAddonPath, builtHelperPath } from './nfnl-channel.js';
export { emptyNewSetElem } from './nfnl.js';
export type { MessageResult, NetlinkChannelOptions } from './nfnl-channel.js';
export { NftChannel, NftError } from './nft-channel.js';
export type { NftChannelOptions } from './nft-channel.js';
export { MAX_SHARDS } from './nft-ruleset.js';
export type { NftHook, NftMode } from './nft-ruleset.js';
