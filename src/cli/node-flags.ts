// The V8 flags `porthole serve` runs with wherever we start node ourselves (npm start, the systemd unit, the
// container, the bench). A young generation of 32 MiB semi-spaces instead of V8's 16 MiB: a proxied request makes
// short-lived garbage (headers, buffers, promises), and fewer scavenges cut gateway CPU per keep-alive request by
// about a fifth in `npm run bench` (89 -> 62-78 µs, two alternating runs; CPU per GiB unchanged). The price is
// memory once the young generation has grown: about 40 MiB more RSS (2,000 idle sessions: 189 -> 227 MiB).
// V8 reads it only at start-up (v8.setFlagsFromString comes too late); NODE_OPTIONS cannot take it back.
export const GATEWAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32']
