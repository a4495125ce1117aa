// Files in the data dir that no reader ever sees half-written: each is written to a temp file, fsynced, then
// put in place in one step. `replaceFile` renames over the old file (readers see the old or the new one; the
// directory is fsynced so the rename survives a crash); `createOnce` hard-links, which (unlike rename) fails
// when the name exists, so two gateways starting at once on one data dir agree on the first file written.
// Used by identity/ (accounts, name holds) and certs/ (keys, certificates).
import { closeSync, fchmodSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { open, rename, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'

export function ensureDataDir (dataDir: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
}

/** The file's text, or null when it does not exist. */
export function readIfExists (path: string): string | null {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw error
  }
}

/**
 * Creates `path` with `text` and `mode` unless it exists already; returns what the file holds afterwards
 * (ours, or the one another process created first).
 */
export function createOnce (path: string, text: string, mode: number): string {
  const temp = writeTemp(path, text, mode)
  try {
    linkSync(temp, path)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return readFileSync(path, 'utf8')
    // Some file systems (FUSE, SMB) have no hard links; a rename is still atomic, only not exclusive.
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
      renameSync(temp, path)
      return text
    }
    throw error
  } finally {
    try { unlinkSync(temp) } catch {}
  }
  return text
}

/** Replaces `path` with `text` in one step: readers see the old or the new file, and so does a crash. */
export function replaceFile (path: string, text: string, mode: number): void {
  const temp = writeTemp(path, text, mode)
  try {
    renameSync(temp, path)
  } catch (error) {
    try { unlinkSync(temp) } catch {}
    throw error
  }
  // The rename is durable only once the directory is.
  const dir = openSync(dirname(path), 'r')
  try {
    fsyncSync(dir)
  } finally {
    closeSync(dir)
  }
}

let tempCounter = 0

/**
 * replaceFile without blocking the event loop: the same steps (temp file, fsync, rename, fsync of the directory)
 * on the thread pool. Callers keep at most one in flight per path (identity/name-store.ts).
 */
export async function replaceFileAsync (path: string, text: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}.${Date.now()}.${tempCounter++}.tmp`
  const file = await open(temp, 'wx', mode)
  try {
    await file.chmod(mode) // the umask may have narrowed the mode given to open
    await file.writeFile(text)
    await file.sync()
  } catch (error) {
    await file.close().catch(() => {})
    await unlink(temp).catch(() => {})
    throw error
  }
  await file.close()
  try {
    await rename(temp, path)
  } catch (error) {
    await unlink(temp).catch(() => {})
    throw error
  }
  const dir = await open(dirname(path), 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}

/** Writes `text` to a new temp file beside `path` (fsynced, with exactly `mode`); returns its path. */
function writeTemp (path: string, text: string, mode: number): string {
  const temp = `${path}.${process.pid}.${Date.now()}.tmp`
  const fd = openSync(temp, 'wx', mode)
  try {
    fchmodSync(fd, mode) // the umask may have narrowed the mode given to open
    writeSync(fd, text)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  return temp
}
