// How a refusal reaches an ngrok agent: an RPC reply whose only meaningful field is Error. What the SDKs make
// of that text was read in their sources (ngrok-rust proto.rs ErrResp::from and raw_session.rs rpc(), ngrok-go
// msg.go ngrokError, ngrok-javascript lib.rs napi_ngrok_err); see ngrokError for the consequence.
import type { PortholeError } from '../../core/errors.js'

/**
 * An error reply: `{"Error": text}`. ngrok's own text is `message\n\nERR_NGROK_123`; ngrok-rust (ErrResp::from)
 * takes a line starting `ERR_NGROK_` as the code and the other non-empty lines as the message, and treats an
 * empty Error as success, so the text is never empty. Give `code` only for a real ERR_NGROK_ code.
 */
export function errorReply (message: string, code?: string): string {
  const text = message.trim() === '' ? 'error' : message
  return JSON.stringify({ Error: code === undefined ? text : `${text}\n\n${code}` })
}

/**
 * The text an ngrok SDK shows for a PortholeError: `PH_1071: this gateway cannot honour ngrok option Opts.X (why)`, one line.
 * No code line follows it: ngrok-rust and ngrok-go recognise only `ERR_NGROK_<digits>` lines as codes, so a
 * `PH_1071` line would be shown again as part of the message, and an `ERR_NGROK_PH_1071` line would make
 * ngrok-rust print a link to https://ngrok.com/docs/errors/err_ngrok_ph_1071, which does not exist. The
 * @ngrok/ngrok SDK shows it as `failed to start tunnel: PH_1071: ...`.
 */
export function ngrokError (error: PortholeError): string {
  return error.toLine().replace(/[\r\n]+/g, ' ')
}

/** errorReply(ngrokError(error)). */
export function errorReplyFor (error: PortholeError): string {
  return errorReply(ngrokError(error))
}
