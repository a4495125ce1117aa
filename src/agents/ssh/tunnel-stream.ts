// What the SSH dialer does to a forwarded-tcpip channel so that it behaves like the TCP socket every edge
// expects of a tunnel stream (DESIGN: each transport fixes its own library's quirks):
//  - Half-close. ssh2's server-side channels answer end() with CHANNEL_EOF *and* CHANNEL_CLOSE, so a public
//    client that sent its request and shut its write side (`nc -N`, HTTP/1.0-style) had its channel closed
//    under it and got none of the answer. Here end() sends CHANNEL_EOF only, like shutdown(SHUT_WR); the
//    channel closes when the agent closes it (OpenSSH and Dropbear do once both sides sent EOF) or when the
//    edge destroys the stream.
//  - Destroy. ssh2's Channel.destroy() ignores its error argument and leaves `destroyed` false, where a consumer
//    (undici ends a request by destroying its socket with the reason and reads the reason back from 'error')
//    expects net.Socket's: `destroyed` true at once and the error emitted.
//  - Abort. When the SSH connection goes (agent killed, network gone, session killed) ssh2 ends every open
//    channel as if the agent had sent EOF, and a truncated stream passed for a complete one. A channel the
//    agent had not ended fails instead, with ECONNRESET, as a socket whose peer vanished does; the edge turns
//    that into a TCP reset for the public client.
import { Duplex } from 'node:stream'
import type { ServerChannel } from 'ssh2'

/** The parts of ssh2's Channel this relies on (lib/Channel.js). */
interface ChannelInternals {
  readonly incoming: { readonly state: 'open' | 'eof' | 'closed' }
  eof (): void
  close (): void
}

/** Makes end() send CHANNEL_EOF only; returns the same channel. */
export function halfClosing (channel: ServerChannel): ServerChannel {
  // ssh2 registers one listener on both 'prefinish' and 'finish' that sends EOF and then CLOSE on server
  // channels: drop it and send the EOF ourselves once everything written went out.
  const prefinish = channel.listeners('prefinish')
  for (const listener of channel.listeners('finish')) {
    if (!prefinish.includes(listener)) continue
    channel.off('finish', listener as (...args: unknown[]) => void)
    channel.off('prefinish', listener as (...args: unknown[]) => void)
  }
  channel.once('finish', () => (channel as unknown as ChannelInternals).eof())
  return channel
}

/** Makes destroy(error) behave as net.Socket's; returns the same channel. */
export function socketDestroy (channel: ServerChannel): ServerChannel {
  channel.destroy = function (this: ServerChannel, error?: Error) {
    // ssh2's destroy() is end() then close(). Once the stream has ended (most channels by the time they are
    // destroyed) end() would only build an ERR_STREAM_ALREADY_FINISHED, stack trace and all, and drop it: about
    // 4% of the gateway's CPU when every public connection opens its own channel (tcp endpoints,
    // `Connection: close`).
    if (!this.writableEnded && !this.destroyed) this.end() // our side: CHANNEL_EOF (halfClosing)
    const internals = this as unknown as ChannelInternals
    internals.close() // CHANNEL_CLOSE
    // Then the stream's own destroy, as net.Socket would: `destroyed` is true at once (undici's parser stops on
    // it) and the error is emitted on the next tick. ssh2 still emits 'close' when the peer agrees.
    return Duplex.prototype.destroy.call(this, this.listenerCount('error') > 0 ? error : undefined) as ServerChannel
  }
  return channel
}

/**
 * Fails a channel whose agent had not ended its side when the session went: 'error' (ECONNRESET) rather
 * than 'end'. A channel the agent already ended (CHANNEL_EOF) is complete and left to close normally.
 */
export function abortUnfinished (channel: ServerChannel): void {
  if (channel.destroyed || (channel as unknown as ChannelInternals).incoming.state !== 'open') return
  const error = Object.assign(new Error('the agent\'s SSH session ended mid-stream'), { code: 'ECONNRESET' })
  // The stream's own destroy (ssh2's ignores its argument and would try to talk to a gone peer); without a
  // listener the error would be thrown, so a channel nobody reads yet is just destroyed. ssh2 still emits
  // 'close' when it cleans up the connection's channels, synchronously, right after this: the error is emitted
  // now, not a tick later as destroy(error) would, or it would reach a reader that already let go on 'close'
  // (undici threw a TypeError there and the gateway died; found by npm run soak).
  const reader = channel.listenerCount('error') > 0
  Duplex.prototype.destroy.call(channel)
  if (reader) channel.emit('error', error)
}
