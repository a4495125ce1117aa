// The one ssh command a new user can try against the gateway just started (`npm start`), with its real port and
// host, e.g. `try: ssh -p 2222 -R 80:localhost:3000 localhost http`. It goes to stderr, not stdout: stdout is the
// pino log, one JSON object per line that collectors parse, and a human line there would break them; on a
// terminal both streams show, so the user sees it under the start line.
import { isLoopback } from '../config/schema.js'

/** `try: ssh [-p PORT] -R 80:localhost:3000 HOST http` for an SSH listener on `host:port` of gateway `domain`. */
export function tryLine (sshHost: string, sshPort: number, domain: string): string {
  // A loopback listener is reached as localhost; on any other address users reach it by the gateway's domain.
  const host = isLoopback(sshHost) ? 'localhost' : domain
  return `try: ssh ${sshPort === 22 ? '' : `-p ${sshPort} `}-R 80:localhost:3000 ${host} http`
}
