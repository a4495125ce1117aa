// The ngrok agent side of `npm run bench`'s agents part: the official @ngrok/ngrok SDK, in a process of its own
// (as a user's app would run it), forwarding an http endpoint of the gateway to the bench's nginx.
//   node bench/ngrok-agent.js SERVER_ADDR CA_FILE DOMAIN UPSTREAM_URL
// Prints the endpoint's URL once bound, then stays up until killed.
import { readFileSync } from 'node:fs'
import ngrok from '@ngrok/ngrok'

const [serverAddr, caFile, domain, upstream] = process.argv.slice(2)
const session = await new ngrok.SessionBuilder().authtoken('bench').serverAddr(serverAddr).caCert(readFileSync(caFile)).connect()
const listener = await session.httpEndpoint().domain(domain).listenAndForward(upstream)
process.stdout.write(`${listener.url()}\n`)
setInterval(() => {}, 1 << 30)
