// kafkajs transactions against Riffle. Run by
// tests/compat/test_transactions_kafkajs.py as `node transactions.js` with
// BOOTSTRAP and TOPIC_PREFIX in the environment; exits non-zero on the first
// failed check and prints a JSON report (its last stdout line) for the
// Python side to check against confluent-kafka readers.
//
// A transactional producer (kafkajs' own InitProducerId, AddPartitionsToTxn,
// AddOffsetsToTxn, TxnOffsetCommit and EndTxn code) commits a transaction,
// aborts one and commits another, each writing both partitions of a topic
// and committing a group offset in the transaction (sendOffsets). A
// read_committed kafkajs consumer (readUncommitted: false) sees exactly the
// committed records, a read_uncommitted one all of them; the group's offset
// is the one of the last committed transaction, not the aborted one.

'use strict'

const assert = require('node:assert/strict')
const { Kafka, logLevel } = require('kafkajs')

const bootstrap = process.env.BOOTSTRAP || '127.0.0.1:9092'
const prefix = process.env.TOPIC_PREFIX || `kafkajs-txn-${Date.now()}`
const step = name => process.stderr.write(`kafkajs transactions: ${name}\n`)

async function waitFor(what, check, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 100))
  }
}

async function readAll(kafka, topic, groupId, readUncommitted, expectedCount) {
  const seen = []
  const consumer = kafka.consumer({ groupId, readUncommitted, sessionTimeout: 10000, heartbeatInterval: 500 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      seen.push({ partition, offset: Number(message.offset), value: message.value.toString() })
    },
  })
  await waitFor(`${expectedCount} records (readUncommitted: ${readUncommitted})`, () => seen.length >= expectedCount)
  await consumer.disconnect()
  return seen
}

async function main() {
  const kafka = new Kafka({
    clientId: 'riffle-compat-kafkajs-txn',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    retry: { retries: 8 },
  })
  const topic = `${prefix}-topic`
  const offsetsGroup = `${prefix}-offsets`
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 2, replicationFactor: 1 }] })

  const producer = kafka.producer({
    transactionalId: `${prefix}-txn`,
    idempotent: true,
    maxInFlightRequests: 1,
  })
  await producer.connect()

  const batch = tag => [0, 1, 2, 3, 4, 5].map(i => ({ partition: i % 2, value: `${tag}-${i}` }))
  const plan = [['c1', 'commit', '5'], ['a2', 'abort', '7'], ['c3', 'commit', '9']]
  for (const [tag, end, offset] of plan) {
    step(`transaction ${tag}: send, sendOffsets(${offset}), ${end}`)
    const txn = await producer.transaction()
    await txn.send({ topic, messages: batch(tag) })
    await txn.sendOffsets({
      consumerGroupId: offsetsGroup,
      topics: [{ topic, partitions: [{ partition: 0, offset }] }],
    })
    if (end === 'commit') await txn.commit()
    else await txn.abort()
  }

  step('the group offset is the last committed transaction\'s')
  await waitFor('the committed group offset', async () => {
    const fetched = await admin.fetchOffsets({ groupId: offsetsGroup, topics: [topic] })
    const p0 = fetched[0].partitions.find(p => p.partition === 0)
    return p0 && p0.offset === '9'
  }, 30000)

  step('read_committed consumer: the committed records only')
  // c3 comes after a2 in both partitions, so once every c3 record is read an
  // a2 record would have been read too.
  const committed = await readAll(kafka, topic, `${prefix}-rc`, false, 12)
  const values = committed.map(r => r.value).sort()
  assert.deepEqual(values, [...batch('c1'), ...batch('c3')].map(m => m.value).sort())

  step('read_uncommitted consumer: the aborted records too')
  const all = await readAll(kafka, topic, `${prefix}-ru`, true, 18)
  assert.deepEqual(all.map(r => r.value).sort(),
    [...batch('c1'), ...batch('a2'), ...batch('c3')].map(m => m.value).sort())

  step('a second producer with the same transactional id fences the first')
  const zombie = producer
  const successor = kafka.producer({ transactionalId: `${prefix}-txn`, idempotent: true, maxInFlightRequests: 1 })
  await successor.connect()
  // kafkajs asks for the transactional producer id (InitProducerId with the
  // transactional id, which fences the older epoch) at its first transaction.
  const txn = await successor.transaction()
  const late = await zombie.transaction()
  let fenced = null
  try {
    await late.send({ topic, messages: [{ partition: 0, value: 'zombie' }] })
    await late.commit()
  } catch (e) {
    fenced = e
  }
  assert.ok(fenced, 'the fenced producer committed')
  assert.ok(/PRODUCER_FENCED|INVALID_PRODUCER_EPOCH|fenced|epoch/i.test(`${fenced.type} ${fenced.message}`),
    `unexpected error from the fenced producer: ${fenced.type} ${fenced.message}`)
  await txn.send({ topic, messages: [{ partition: 1, value: 'successor' }] })
  await txn.commit()

  await successor.disconnect()
  await zombie.disconnect().catch(() => {})
  await admin.disconnect()
  process.stdout.write(JSON.stringify({
    topic,
    committed: [...batch('c1'), ...batch('c3')].map(m => m.value).concat(['successor']),
    aborted: batch('a2').map(m => m.value),
    fenced: `${fenced.type}: ${fenced.message}`,
  }) + '\n')
  step('done')
}

main().catch(err => {
  process.stderr.write(`kafkajs transactions: FAILED: ${err.stack || err}\n`)
  process.exit(1)
})
