// When an SSH connection's forwards may bind: only once its session's options are known, so `--basic-auth`
// can never arrive after an endpoint went public without it (issue 9). A session channel that exists is
// always waited for (up to commandWaitMs, then its forwards are refused); no-more-sessions means no session
// will come; only a client that opened no session at all binds with defaults after settleMs (Dropbear -N).
// A tagged union with one deadline timer per wait: the event that ends a wait (a session opening, its command,
// no-more-sessions) moves to the next state and cancels the timer. No polling.
import type { Socket } from 'node:net'
import type { PortholeError } from '../../core/errors.js'
import { DEFAULT_OPTIONS, type SessionOptions } from './exec-grammar.js'

export type OptionsState =
  /** No forward waits and no session was opened yet. */
  | { readonly state: 'unknown' }
  /** Forwards wait and no session is open: binds with defaults at the settle deadline (Dropbear -N). */
  | { readonly state: 'settling', readonly timer: NodeJS.Timeout }
  /** A session is open: its exec/shell decides. The deadline runs once a forward waits. */
  | { readonly state: 'session', readonly timer: NodeJS.Timeout | null }
  /** The command arrived: being parsed, or reading stdin. */
  | { readonly state: 'reading' }
  | { readonly state: 'known', readonly options: SessionOptions }
  /** A bad command, --help, none in time, or the connection closed: forwards are refused; `error` is what a
   *  late exec hears. */
  | { readonly state: 'refused', readonly error: PortholeError | null }

export interface SessionOptionsHooks {
  readonly settleMs: number
  readonly commandWaitMs: number
  /** ssh2 records no-more-sessions@openssh.com in a flag and emits nothing. */
  readonly noMoreSessions: () => boolean
  /** The connection's socket: read for no-more-sessions while settling. */
  readonly socket: Socket | undefined
  /** Options are known (now in `state`): bind the forwards that wait. */
  readonly bind: () => void
  /** Forwards are refused (state `refused`): answer the ones that wait. */
  readonly refuseWaiting: () => void
  /** The session's command did not come in time: the error that refuses the waiting forwards. */
  readonly timedOut: () => PortholeError
}

export class SessionOptionsLifecycle {
  readonly #hooks: SessionOptionsHooks
  #state: OptionsState = { state: 'unknown' }

  constructor (hooks: SessionOptionsHooks) {
    this.#hooks = hooks
  }

  get state (): OptionsState {
    return this.#state
  }

  /** A forward was queued: bind it, refuse it, or start the wait the state calls for. */
  forwardWaiting (): void {
    const state = this.#state
    switch (state.state) {
      case 'known':
        return this.#hooks.bind()
      case 'refused':
        return this.#hooks.refuseWaiting()
      case 'unknown':
        if (this.#hooks.noMoreSessions()) return this.#useDefaults()
        this.#enter({ state: 'settling', timer: this.#deadline(this.#hooks.settleMs, () => this.#useDefaults()) })
        // OpenSSH -N sends no-more-sessions right after its forwards: each chunk of input is checked for it
        // while settling (ssh2's own listener has parsed the chunk first), and once after the chunk being
        // parsed now (a listener added during 'data' misses that chunk).
        this.#hooks.socket?.on('data', this.#onInput)
        setImmediate(this.#onInput)
        return
      case 'session':
        if (!state.timer) this.#enter({ state: 'session', timer: this.#commandDeadline() })
        return
      case 'settling':
      case 'reading':
    }
  }

  /** A session channel opened: options will come with its exec/shell; no binding with defaults any more. */
  sessionOpened (forwardsWait: boolean): void {
    const state = this.#state.state
    if (state === 'unknown' || state === 'settling') this.#enter({ state: 'session', timer: forwardsWait ? this.#commandDeadline() : null })
  }

  /** The session's exec/shell arrived. False when it is late: the options were settled without it. */
  commandArrived (): boolean {
    if (this.#state.state !== 'session') return false
    this.#enter({ state: 'reading' })
    return true
  }

  known (options: SessionOptions): void {
    this.#enter({ state: 'known', options })
  }

  refused (error: PortholeError | null): void {
    this.#enter({ state: 'refused', error })
  }

  /** Leaves the current state (its timer, its input watch) for `next`. */
  #enter (next: OptionsState): void {
    const current = this.#state
    if ((current.state === 'settling' || current.state === 'session') && current.timer) clearTimeout(current.timer)
    if (current.state === 'settling') this.#hooks.socket?.off('data', this.#onInput)
    this.#state = next
  }

  readonly #onInput = (): void => {
    if (this.#state.state === 'settling' && this.#hooks.noMoreSessions()) this.#useDefaults()
  }

  /** No session will come (none in the settle time, or no-more-sessions): bind with defaults. */
  #useDefaults (): void {
    this.#enter({ state: 'known', options: DEFAULT_OPTIONS })
    this.#hooks.bind()
  }

  #commandDeadline (): NodeJS.Timeout {
    return this.#deadline(this.#hooks.commandWaitMs, () => {
      this.#enter({ state: 'refused', error: this.#hooks.timedOut() })
      this.#hooks.refuseWaiting()
    })
  }

  /**
   * One timer for a wait; `expired` runs only if the state still holds this timer. It is judged after the
   * sockets were read once more (setImmediate): after a stall of the whole process (GC, overload) expired
   * timers run before pending input is read, and a session open already received must count as in time.
   */
  #deadline (ms: number, expired: () => void): NodeJS.Timeout {
    const timer: NodeJS.Timeout = setTimeout(() => setImmediate(() => {
      const state = this.#state
      if ((state.state === 'settling' || state.state === 'session') && state.timer === timer) expired()
    }), ms)
    return timer
  }
}
