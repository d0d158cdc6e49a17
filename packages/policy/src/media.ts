/**
 * From one m-line (and its counterpart in the other party's SDP) to the flows that must reach the
 * m-line's owner: RTP (or T.38 UDPTL, or TCP media) and RTCP. Pure; no policy about zones or
 * sources here, only what SDP says.
 */
import type { MediaEndpoint } from '@pinhole/sip';
import type { MediaProtocol } from './config.js';
import { parseIp, type IpAddress } from './ip.js';

/** Largest `m=<media> <port>/<count>` count honoured (RFC 4566 §5.14); more is refused. */
export const MAX_PORT_COUNT = 16;

export interface Flow {
  readonly address: IpAddress;
  readonly port: number;
  readonly protocol: MediaProtocol;
  readonly flow: 'rtp' | 'rtcp';
}

export type FlowProblem =
  | { readonly code: 'protocol-unsupported'; readonly detail: string }
  | { readonly code: 'address-invalid'; readonly detail: string }
  | { readonly code: 'sdp-invalid'; readonly detail: string };

/** The transport under an SDP `<proto>`: UDP for RTP/AVP, RTP/SAVPF, UDP/TLS/RTP/SAVP, udptl... */
export function transportOf(proto: string): MediaProtocol | undefined {
  const p = proto.toUpperCase();
  if (p.startsWith('TCP')) return 'tcp';
  if (p.startsWith('RTP/') || p.startsWith('UDP') || p === 'UDPTL' || p.startsWith('UDPTL/')) {
    return 'udp';
  }
  return undefined;
}

/** RTP profiles carry RTCP beside them (RFC 3550 §11); udptl, MSRP and plain TCP do not. */
export function carriesRtcp(proto: string): boolean {
  return proto.toUpperCase().includes('RTP/');
}

/** Does `own`'s owner receive RTP on this stream? RFC 3264 §5.1 / §6.1 direction semantics. */
export function receivesMedia(own: MediaEndpoint, peer: MediaEndpoint | undefined): boolean {
  const ownRecv = own.direction === 'sendrecv' || own.direction === 'recvonly';
  const peerSends = !peer || peer.direction === 'sendrecv' || peer.direction === 'sendonly';
  return ownRecv && peerSends;
}

/**
 * The flows toward `own`'s owner. `peer` is the other side's m-line at the same index when an
 * answer exists (undefined while only the offer is known: then RTCP-mux is not yet agreed).
 * Returns no flows for a disabled stream (port 0) or a held stream (`c=` 0.0.0.0 / `::`).
 */
export function flowsToward(
  own: MediaEndpoint,
  peer: MediaEndpoint | undefined,
): { flows: Flow[]; problem: FlowProblem | undefined } {
  const flows: Flow[] = [];
  // RFC 3264 §6: "An offered stream MAY be rejected in the answer by setting the port to zero."
  if (own.disabled || own.port === 0 || peer?.disabled === true || peer?.port === 0) {
    return { flows, problem: undefined };
  }
  const protocol = transportOf(own.protocol);
  if (!protocol) {
    return {
      flows,
      problem: { code: 'protocol-unsupported', detail: `m=${own.type} transport ${own.protocol}` },
    };
  }
  if (own.address === undefined) {
    return { flows, problem: { code: 'sdp-invalid', detail: `m=${own.type} has no c= line` } };
  }
  const address = parseIp(own.address);
  if (!address) {
    return {
      flows,
      problem: { code: 'address-invalid', detail: `c= address "${own.address}" is not an IP` },
    };
  }
  if (
    (own.addressType === 'IP4' && address.family !== 4) ||
    (own.addressType === 'IP6' && address.family !== 6)
  ) {
    return {
      flows,
      problem: {
        code: 'address-invalid',
        detail: `c= address ${address.text} is not ${own.addressType}`,
      },
    };
  }
  // RFC 3264 §8.4 / RFC 2543 hold: c=0.0.0.0 (or ::) means "send nothing here".
  if (address.bytes.every((b) => b === 0)) return { flows, problem: undefined };
  if (!Number.isInteger(own.port) || own.port < 1 || own.port > 65535) {
    return { flows, problem: { code: 'sdp-invalid', detail: `port ${own.port}` } };
  }
  const count = own.portCount;
  if (!Number.isInteger(count) || count < 1 || count > MAX_PORT_COUNT) {
    return { flows, problem: { code: 'sdp-invalid', detail: `port count ${count}` } };
  }
  // RFC 4145 §4.1: port 9 (discard) on a TCP m-line means "I will connect, do not connect to me".
  if (protocol === 'tcp' && own.port === 9) return { flows, problem: undefined };

  let problem: FlowProblem | undefined;
  const rtp = carriesRtcp(own.protocol);
  const media = receivesMedia(own, peer);
  // RFC 5761 §5.1.1: RTP and RTCP share the port only if the answer also says a=rtcp-mux.
  const muxed = rtp && own.rtcpMux && peer !== undefined && peer.rtcpMux;
  for (let k = 0; k < count; k++) {
    // RFC 3550 §11: RTP on an even port, RTCP on the next higher (odd) port.
    const port = own.port + 2 * k;
    if (port > 65535) break;
    if (media) flows.push({ address, port, protocol, flow: 'rtp' });
    // RFC 3264 §5.1: RTCP is sent even when a stream is sendonly, recvonly or inactive.
    if (rtp && !muxed) {
      if (count === 1 && own.rtcp) {
        // RFC 3605: a=rtcp:<port> [IN IP4 <address>] overrides port + 1.
        let rtcpAddress: IpAddress | undefined = address;
        if (own.rtcp.address !== undefined) rtcpAddress = parseIp(own.rtcp.address);
        if (!rtcpAddress) {
          problem = {
            code: 'address-invalid',
            detail: `a=rtcp address "${own.rtcp.address ?? ''}" is not an IP`,
          };
          continue;
        }
        if (rtcpAddress.bytes.every((b) => b === 0)) continue;
        if (own.rtcp.port >= 1 && own.rtcp.port <= 65535) {
          flows.push({ address: rtcpAddress, port: own.rtcp.port, protocol, flow: 'rtcp' });
        }
      } else if (port + 1 <= 65535) {
        flows.push({ address, port: port + 1, protocol, flow: 'rtcp' });
      }
    }
  }
  return { flows, problem };
}
