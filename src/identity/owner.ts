// The Owner an account's credential (key or authtoken) logs in as, for every agent transport: names belong to
// the account, and binds are checked against that credential's ACL.
import type { Owner } from '../core/endpoint.js'
import { aclAllows, aclGrants } from './acl.js'

export function accountOwner (account: string, acl: readonly string[], credential: string): Owner {
  const owner: Owner = { id: `account:${account}`, persistent: true, known: true, account }
  if (acl.length === 0) return owner
  return { ...owner, refuses: (key) => (aclAllows(acl, key) ? null : `${credential} may bind only ${acl.join(', ')}`), grants: (key) => aclGrants(acl, key) }
}
