// A shell script with only curl takes part in rounds: the terminal of docs/http.md, run as a
// subprocess (bash + curl) against the real listener, next to a terminal driven by fetch.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { call, get, post, startTestGateway } from './helpers/http.js'

const run = promisify(execFile)

// One terminal: heartbeat, then for each round: ready, long-poll the release (after = last round),
// report done with a result. Bounded: gives up after 20 polls.
const TERMINAL = String.raw`
set -eu
BASE=$1 G=$2 ID=$3 ROUNDS=$4
out=$(mktemp); trap 'rm -f "$out"' EXIT
curl -fsS -d "clientId=$ID" "$BASE/v1/groups/$G/heartbeat" >/dev/null
after=0 n=0 polls=0
while [ "$n" -lt "$ROUNDS" ] && [ "$polls" -lt 20 ]; do
  polls=$((polls + 1))
  curl -fsS -d "clientId=$ID" "$BASE/v1/groups/$G/ready" >/dev/null
  code=$(curl -sS -o "$out" -w '%{http_code}' "$BASE/v1/groups/$G/release?clientId=$ID&after=$after&wait=10")
  [ "$code" = 200 ] || continue
  round=$(grep -o '"round":[0-9]*' "$out" | head -n 1 | cut -d: -f2)
  shard=$(grep -o '"index":[0-9]*' "$out" | head -n 1 | cut -d: -f2)
  curl -fsS -d "clientId=$ID" -d "round=$round" -d "ok=true" -d "result=$ID-r$round-s$shard" "$BASE/v1/groups/$G/done" >/dev/null
  echo "round $round"
  after=$round n=$((n + 1))
done
`

void t.test('a bash + curl terminal and a fetch terminal share two full rounds', async (t) => {
  const g = await startTestGateway()
  t.teardown(g.close)
  const put = await run('curl', ['-fsS', '-X', 'PUT', '-H', 'content-type: application/json',
    '-d', '{"need":2,"minOnlineRatio":1,"resetMs":0}', `${g.base}/v1/groups/mix`])
  t.equal(JSON.parse(put.stdout).config.need, 2, 'curl PUT configures the group')

  const shell = run('bash', ['-c', TERMINAL, 'terminal', g.base, 'mix', 'sh1', '2'], { timeout: 30000 })
  // the other participant, in JavaScript
  let after = 0
  for (let i = 0; i < 2; i++) {
    await post(g.base, '/v1/groups/mix/ready', { clientId: 'js1' })
    const rel = await get(g.base, `/v1/groups/mix/release?clientId=js1&after=${after}&wait=10`)
    t.equal(rel.status, 200, `js1 released for round ${i + 1}`)
    t.equal(rel.json.participants, 2, 'js1 and sh1')
    t.same((await post(g.base, '/v1/groups/mix/done', { clientId: 'js1', round: rel.json.round, result: { n: i } })).json, { duplicate: false })
    after = rel.json.round
  }
  const { stdout } = await shell
  t.same(stdout.trim().split('\n'), ['round 1', 'round 2'], 'the shell terminal saw both rounds')

  const hist = JSON.parse((await run('curl', ['-fsS', `${g.base}/v1/groups/mix/rounds?limit=10`])).stdout)
  t.same(hist.map((s: any) => [s.round, s.outcome]), [[2, 'completed'], [1, 'completed']])
  t.match(hist[1].results.sh1, /^sh1-r1-s[01]$/, 'the form-encoded result arrived')
  t.same(hist[1].results.js1, { n: 0 })

  // 204 and X-Round as curl sees them
  const head = await run('curl', ['-sS', '-D', '-', '-o', '/dev/null', `${g.base}/v1/groups/mix/release?clientId=sh1&after=2&wait=0.2`])
  t.match(head.stdout, /^HTTP\/1\.1 204 No Content\r$/m)
  t.match(head.stdout, /^X-Round: 2\r$/mi)
  const err = await run('curl', ['-sS', '-w', '\n%{http_code}', '-d', 'clientId=sh1&round=9', `${g.base}/v1/groups/mix/done`])
  const [body, code] = err.stdout.split('\n')
  t.equal(code, '409')
  t.same(JSON.parse(body).error.code, 'stale_round')
  t.equal((await call(g.base, 'GET', '/v1/groups/mix')).json.state.round, 2)
})
