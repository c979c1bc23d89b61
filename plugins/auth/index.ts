// The auth plugin's one entry (PROTOCOL section 7; docs/security.md): the credentials file, JWTs,
// roles and their rights, the ACL for topics outside the prefix, the MQTT hooks and the HTTP
// gateway's authorization hook.
export { Acl, aclSchema, checkRuleTopic, type AclRuleInput } from './acl.js'
export { GlobList, NAME, ROLES, isRole, mayUseClientId, mayUseGroup, type Identity, type Role } from './identity.js'
export { TokenError, privateKeyFile, publicKeyFile, secretKey, signToken, verifyToken, type TokenKey } from './jwt.js'
export {
  DEFAULT_SCRYPT, PasswdError, formatEntry, hashPassword, loadPasswd, parsePasswd, upsertUser, verifyPassword,
  type PasswdEntry
} from './passwd.js'
export { httpRefusal, schedulerRefusal } from './rights.js'
export { AuthFailure, AuthService, LOGIN_ISSUER, type AuthServiceOptions } from './service.js'
export { MqttAuth, installMqttAuth, type MqttAuthOptions, type SchedulerGuard } from './mqtt.js'
export { httpAuthorizer } from './http.js'
