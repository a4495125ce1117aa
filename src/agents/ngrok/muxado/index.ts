// The muxado multiplexer's public surface (pure library code: nothing here knows about Porthole).
export { MuxCode, MuxError, muxCodeName, streamResetError, type MuxCodeName } from './errors.js'
export { DEFAULT_WINDOW, Flag, FrameReader, FrameType, encodeGoAway, encodeHeader, encodeRst, encodeWndInc, type FrameHandler } from './frame.js'
export { MuxSession, type MuxSessionOptions } from './session.js'
export { MuxStream } from './stream.js'
export { HEARTBEAT_TYPE, Heartbeater, Liveness, answerHeartbeats, type HeartbeaterOptions, type LivenessOptions, type LivenessTimers } from './heartbeat.js'
