// How many idle tunnel streams an endpoint's upstream pool keeps. undici's Pool keeps every stream it opened
// until its keep-alive timeout (30 s), so a burst of 50 concurrent requests left 50 idle SSH channels behind,
// each with the agent's own connection to its service. OpenSSH's client walks all of its channels and polls all
// of their sockets on every turn of its main loop, and the ssh client is the slowest stage of a download (it
// encrypts every byte): after `npm run bench`'s 50-connection wrk run the download that followed cost the ssh
// client 25% more CPU per GiB than with no idle channel (275-301 vs 213-239 CPU ticks per GiB, same gateway).
// sshd has no such cost: its channels close with their public connection.
//
// nginx's upstream `keepalive N` is the model: keep a few idle connections, close the others. undici hands each
// request to the first free client of the pool, so the first clients carry the steady load and keep their
// streams for the full keep-alive; clients made beyond `core` (a burst) close their stream once it has been idle
// for `spareIdleMs`. Under sustained load a spare stream is never idle that long; a later burst opens new ones.
import { Client, type Dispatcher } from 'undici'

/** Streams kept for the full keep-alive timeout per endpoint (a browser opens 6 connections per host). */
export const CORE_STREAMS = 8
/** An idle stream beyond CORE_STREAMS closes after this long. */
export const SPARE_IDLE_MS = 500

/** A Pool `factory`: its first `core` live clients are made as asked, later ones with a short keep-alive. The
 *  clients it made and that are not known to be closed are in `live` (the caller's, to find idle ones). */
export function spareStreamsClose (core = CORE_STREAMS, spareIdleMs = SPARE_IDLE_MS, live = new Set<Client>()): (origin: URL, options: object) => Dispatcher {
  return (origin, options) => {
    for (const client of live) if (client.closed || client.destroyed) live.delete(client)
    const spare = live.size >= core
    const client = new Client(origin, spare ? { ...options, keepAliveTimeout: spareIdleMs, keepAliveMaxTimeout: spareIdleMs } : options)
    live.add(client)
    // The pool drops a client whose connect failed without closing it (undici #3895): not live any more.
    client.once('connectionError', () => live.delete(client))
    return client
  }
}
