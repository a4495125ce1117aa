// ssh2 1.17 can send CHANNEL_WINDOW_ADJUST for a channel after its own CHANNEL_CLOSE: its windowAdjust() only
// skips channels in state 'closed', not 'closing', so data still in flight after we closed a busy stream (a public
// client reset) can cross the window threshold and trigger one. Dropbear frees a channel as soon as both closes
// have passed and exits on any later message for it ("Unknown channel N"), which ends the agent's whole session
// and every endpoint on it. OpenSSH only logs such a message. Found by `npm run soak`.
import type { ServerChannel } from 'ssh2'

interface Windowed { incoming: { window: number } }

/**
 * From our close on, the channel grants no more window: ssh2 sizes an adjust as MAX_WINDOW - window and never
 * sends one that is not positive. Nothing is lost: we no longer read from a channel we closed.
 */
export function noWindowAfterClose (channel: ServerChannel): ServerChannel {
  const close = channel.close.bind(channel)
  channel.close = (): void => {
    ;(channel as unknown as Windowed).incoming.window = Number.POSITIVE_INFINITY
    close()
  }
  return channel
}
