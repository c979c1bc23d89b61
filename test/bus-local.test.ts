// The bus suite against LocalBus: buses joined by one LocalHub, as several engines in one process.
import t from 'tap'
import { LocalHub } from '../plugins/scheduler/index.js'
import { busSuite } from './bus-suite.js'

busSuite(t, 'local', {
  join: (n) => { const hub = new LocalHub(); return Array.from({ length: n }, () => hub.bus()) },
  stranger: () => new LocalHub().bus()
})
