// The public surface of the package: everything else is internal.
export { startGateway, type RunningGateway } from './gateway.js'
export { loadConfig } from './config/load.js'
export type { ServerConfig } from './config/schema.js'
export { catalogue, PortholeError, type ErrorCode } from './core/errors.js'
export type { EndpointSpec, Endpoint, Dialer, Owner } from './core/endpoint.js'
export type { PolicyDocument } from './policy/document.js'
export { createLogger } from './log.js'
