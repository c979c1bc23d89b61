// The scheduler's one entry: everything outside plugins/scheduler/ imports from here, never from
// the parts inside. The parts, one folder each:
//   engine/    the round engine: rules (group-model), configuration and validation, selection,
//              release encoding, and the Store and Bus interfaces. Knows no transport.
//   embedded/  the one-process store: every group's state machine in memory, made durable on disk.
//   redis/     the cluster store and bus: the same rules as Lua scripts in one shared Redis.
//   mqtt/      the MQTT door: aedes hooks, topics, release fan-out, the retained state publisher.
export { Engine, type EngineEvents, type EngineOptions } from './engine/engine.js'
export { LocalBus, LocalHub, type Bus, type BusEvent, type BusHandler } from './engine/bus.js'
export type { GroupSnapshot, RoundsQuery, Store, TerminalOpOptions } from './engine/store.js'
export { ActiveRelease } from './engine/release.js'
export {
  DEFAULT_GROUP_CONFIG, MAX_PAYLOAD_BYTES, mergeConfig, parsePartialConfig, publicConfig
} from './engine/group-config.js'
export { checkClientId, checkGroupName, parseHeartbeat } from './engine/validate.js'
export { select, type Candidate } from './engine/selection.js'
export * from './engine/types.js'
export { MemoryStore, type MemoryStoreOptions } from './embedded/store.js'
export { RedisStore, type RedisStoreOptions } from './redis/store.js'
export { RedisBus, type RedisBusOptions } from './redis/bus.js'
export { reconnect } from './redis/link.js'
export { OP_SOURCES } from './redis/lua-ops.js'
export { installSchedulerDoor, type MqttDoor, type MqttDoorOptions } from './mqtt/door.js'
export type { DoorName, DoorObserver } from './mqtt/observer.js'
export { Topics, topicMatches } from './mqtt/topics.js'
export { StatePublisher } from './mqtt/state-publisher.js'
