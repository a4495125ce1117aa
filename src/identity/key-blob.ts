// SSH public key blobs (RFC 4253 6.6) are a run of wire strings: a uint32 length, then that many bytes.

/** Reads the wire strings of a key blob in turn; undefined past the end. */
export class BlobReader {
  #pos = 0
  constructor (readonly blob: Buffer) {}
  string (): Buffer | undefined {
    const { blob } = this
    if (this.#pos + 4 > blob.length) return undefined
    const length = blob.readUInt32BE(this.#pos)
    const start = this.#pos + 4
    if (length > blob.length - start) return undefined
    this.#pos = start + length
    return blob.subarray(start, start + length)
  }

  get done (): boolean {
    return this.#pos === this.blob.length
  }
}
