// kafkajs consumer groups against Riffle. Run by
// tests/compat/test_kafkajs.py as `node group.js` with BOOTSTRAP and
// TOPIC_PREFIX in the environment; exits non-zero on the first failed check.
//
// Two consumers share a 4-partition topic, every message is consumed once
// by the group, offsets are committed, and a consumer started later in the
// same group resumes after them. The admin client lists, describes and
// deletes the group.

'use strict'

const assert = require('node:assert/strict')
const { Kafka, logLevel } = require('kafkajs')

const bootstrap = process.env.BOOTSTRAP || '127.0.0.1:9092'
const prefix = process.env.TOPIC_PREFIX || `kafkajs-group-${Date.now()}`
const step = name => process.stderr.write(`kafkajs group: ${name}\n`)

async function waitFor(what, check, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 100))
  }
}

async function main() {
  const kafka = new Kafka({
    clientId: 'riffle-compat-kafkajs-group',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    retry: { retries: 5 },
  })
  const topic = `${prefix}-topic`
  const groupId = `${prefix}-group`
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 4, replicationFactor: 1 }] })

  step('produce 100 messages over 4 partitions')
  const producer = kafka.producer()
  await producer.connect()
  const messages = []
  for (let i = 0; i < 100; i++) messages.push({ partition: i % 4, value: `m${i}` })
  await producer.send({ topic, messages })

  step('two consumers in one group read everything once')
  const seen = new Map() // value -> consumer index
  const consumers = []
  for (const index of [0, 1]) {
    const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ message }) => {
        const v = message.value.toString()
        if (!seen.has(v)) seen.set(v, index)
      },
    })
    consumers.push(consumer)
  }
  await waitFor('100 messages', () => seen.size === 100)

  step('both members own partitions; together all four, each once')
  await waitFor('a stable group of two, all partitions assigned', async () => {
    const { groups } = await admin.describeGroups([groupId])
    const g = groups[0]
    if (g.state !== 'Stable' || g.members.length !== 2) return false
    const owned = g.members.flatMap(m => {
      const a = require('kafkajs').AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
      return a ? (a.assignment[topic] || []) : []
    })
    return owned.length === 4 && new Set(owned).size === 4
  })

  step('stop: offsets committed')
  for (const c of consumers) await c.disconnect()
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
  const offsets = committed[0].partitions.map(p => [p.partition, p.offset]).sort((a, b) => a[0] - b[0])
  assert.deepEqual(offsets, [[0, '25'], [1, '25'], [2, '25'], [3, '25']])

  step('a new consumer in the group resumes after the committed offsets')
  await producer.send({ topic, messages: [0, 1, 2, 3].map(p => ({ partition: p, value: `late${p}` })) })
  const later = []
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({ eachMessage: async ({ message }) => { later.push(message.value.toString()) } })
  await waitFor('the 4 late messages', () => later.length >= 4)
  await new Promise(r => setTimeout(r, 500))
  assert.deepEqual(later.sort(), ['late0', 'late1', 'late2', 'late3'])
  await consumer.disconnect()

  step('listGroups, deleteGroups')
  const { groups } = await admin.listGroups()
  assert.ok(groups.some(g => g.groupId === groupId && g.protocolType === 'consumer'), JSON.stringify(groups))
  await admin.deleteGroups([groupId])
  const after = await admin.describeGroups([groupId])
  assert.equal(after.groups[0].state, 'Dead')

  await producer.disconnect()
  await admin.disconnect()
  step('done')
}

main().catch(err => {
  process.stderr.write(`kafkajs group: FAILED: ${err.stack || err}\n`)
  process.exit(1)
})
