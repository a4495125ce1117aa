#!/usr/bin/env node
// Entry point installed as `porthole`; the CLI lives in src/cli (compiled to dist/ by `npm install`).
import { main } from '../dist/cli/main.js'

main(process.argv.slice(2)).then((code) => { if (typeof code === 'number') process.exitCode = code })
