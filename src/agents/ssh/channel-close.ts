// How the gateway closes a forwarded-tcpip channel whose public side went away (a reset client, an aborted
// request). ssh2 1.17 sends CHANNEL_CLOSE at once, and then may still send CHANNEL_WINDOW_ADJUST for the channel:
// its windowAdjust() skips only 'closed' channels, not 'closing' ones, so data still in flight can cross the
// window threshold and trigger one. Dropbear frees a channel as soon as both closes have passed and exits on any
// later message for it ("Unknown channel N"), ending the agent's whole session and every endpoint on it (found by
// `npm run soak`; OpenSSH only logs such a message). Nothing may follow our CLOSE, so it must come last:
//   1. EOF (no more data from us) and keep reading, and granting window, while the agent flushes what it holds
//      for its service and shuts that connection's write side; the service then ends its side, and the agent
//      sends EOF and CLOSE, which ssh2 answers.
//   2. If the agent has not closed within DRAIN_MS (a service that ignores EOF), CLOSE ourselves with the window
//      frozen, as OpenSSH does: no adjust can follow it.
// The first step is what a TCP FIN does for the service: it sees its client go and ends the connection itself.
// Used with tunnel-stream.ts's halfClosing (end() sends EOF only); this covers destroy(), which calls close().
import type { ServerChannel } from 'ssh2'

/** How long a closed public side waits for the agent to finish the channel before closing it regardless. */
export const DRAIN_MS = 5_000

interface ChannelState { incoming: { state: string, window: number } }

/** Channels the gateway closed (the edge destroyed them): their consumer is gone and gets no event any more. */
const closedHere = new WeakSet<ServerChannel>()

/** Whether the gateway closed this channel itself; a net.Socket emits no 'error' after destroy(), nor may this. */
export function closedByGateway (channel: ServerChannel): boolean {
  return closedHere.has(channel)
}

export function closeAfterPeer (channel: ServerChannel, drainMs = DRAIN_MS): ServerChannel {
  const state = channel as unknown as ChannelState
  const closeNow = channel.close.bind(channel)
  let closing = false
  channel.close = (): void => {
    // Answering the agent's CLOSE (ssh2 calls close() for that), or already gone: nothing can follow it.
    if (state.incoming.state === 'closed') return closeNow()
    if (closing) return
    closing = true
    closedHere.add(channel)
    channel.eof()
    channel.resume() // read and drop what still comes, so ssh2 keeps granting window
    const timer = setTimeout(() => {
      if (state.incoming.state === 'closed') return
      state.incoming.window = Number.POSITIVE_INFINITY // ssh2 sizes an adjust as MAX_WINDOW - window: never again
      closeNow()
    }, drainMs)
    timer.unref()
    channel.once('close', () => clearTimeout(timer))
  }
  return channel
}
