// ssh2 1.17 can send CHANNEL_WINDOW_ADJUST for a channel after its own CHANNEL_CLOSE: its windowAdjust() skips
// only channels in state 'closed', not 'closing', so data still in flight after we closed a busy channel (the
// edge destroyed it: a public client reset) can cross the window threshold and trigger one. Dropbear frees a
// channel as soon as both closes have passed and exits on any later message for it ("Unknown channel N"), ending
// the agent's whole session and every endpoint on it; OpenSSH only logs such a message. Found by `npm run soak`.
// OpenSSH's own rule is the fix: no window adjust once CLOSE was sent.
import type { ServerChannel } from 'ssh2'

interface Windowed { incoming: { window: number } }

/** From our CLOSE on, the channel grants no more window (ssh2 sizes an adjust as MAX_WINDOW - window). */
export function noWindowAfterClose (channel: ServerChannel): ServerChannel {
  const close = channel.close.bind(channel)
  channel.close = (): void => {
    ;(channel as unknown as Windowed).incoming.window = Number.POSITIVE_INFINITY
    close()
  }
  return channel
}
