/**
 * Dialog identity helpers (RFC 3261 §12): enough for a policy to key per-call state, not a
 * dialog layer.
 */
import type { SipMessage } from '@pinhole/sip';

/**
 * What a message says about its dialog. `none`: a request outside any dialog (no To tag);
 * `early`: a 101-199 response with a To tag; `confirmed`: a 2xx to INVITE, or a request inside
 * a dialog; `terminated`: a 3xx-6xx to an initial INVITE, or a BYE.
 */
export type DialogState = 'none' | 'early' | 'confirmed' | 'terminated';

export interface DialogId {
  readonly callId: string;
  readonly fromTag: string | undefined;
  readonly toTag: string | undefined;
  readonly state: DialogState;
  /**
   * Direction-independent key `callId;tagA;tagB` (tags sorted), equal for a request from the
   * caller and one from the callee in the same dialog. Only the From tag before a To tag exists.
   */
  readonly key: string;
}

/** The local/remote view of a dialog ID for one side (§12: "local tag", "remote tag"). */
export interface DialogSides {
  readonly callId: string;
  readonly localTag: string | undefined;
  readonly remoteTag: string | undefined;
}

export function dialogState(message: SipMessage): DialogState {
  const toTag = message.to()?.tag;
  const method = message.method.toUpperCase();
  if (message.isRequest) {
    if (toTag === undefined) return 'none';
    return method === 'BYE' ? 'terminated' : 'confirmed';
  }
  const s = message.status;
  if (method !== 'INVITE') {
    if (method === 'BYE' && s >= 200) return 'terminated';
    return toTag === undefined ? 'none' : 'confirmed';
  }
  // §12.1: "Dialogs are created through the generation of non-failure responses to requests
  // with specific methods"; §12.1.1/§13.2.2.4: a 101-199 with a To tag creates an early dialog,
  // a 2xx a confirmed one.
  if (s < 200) return s > 100 && toTag !== undefined ? 'early' : 'none';
  if (s < 300) return 'confirmed';
  // §12.3: a non-2xx final response to the INVITE terminates its early dialogs.
  return 'terminated';
}

/** Dialog identity of a message; `undefined` when it has no Call-ID. */
export function dialogId(message: SipMessage): DialogId | undefined {
  const callId = message.callId();
  if (callId === undefined) return undefined;
  const fromTag = message.from()?.tag;
  const toTag = message.to()?.tag;
  return {
    callId,
    fromTag,
    toTag,
    state: dialogState(message),
    key: dialogKey(callId, fromTag, toTag),
  };
}

export function dialogKey(
  callId: string,
  tagA: string | undefined,
  tagB: string | undefined,
): string {
  if (tagA === undefined || tagB === undefined) return `${callId};${tagA ?? tagB ?? ''}`;
  return tagA <= tagB ? `${callId};${tagA};${tagB}` : `${callId};${tagB};${tagA}`;
}

/**
 * Local and remote tags for the side that sent (`uac`) or received (`uas`) the request of this
 * message. §12.1.1 (UAS): "The remote tag is set to the value of the tag in the From header field
 * of the request, and the local tag is set to the value of the tag in the To header field of the
 * response". §12.1.2 (UAC) is the mirror image.
 */
export function dialogSides(message: SipMessage, role: 'uac' | 'uas'): DialogSides | undefined {
  const callId = message.callId();
  if (callId === undefined) return undefined;
  const fromTag = message.from()?.tag;
  const toTag = message.to()?.tag;
  return role === 'uac'
    ? { callId, localTag: fromTag, remoteTag: toTag }
    : { callId, localTag: toTag, remoteTag: fromTag };
}
