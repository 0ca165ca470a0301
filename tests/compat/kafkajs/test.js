// kafkajs against Riffle. Run by tests/compat/test_kafkajs.py as
// `node test.js` with BOOTSTRAP (host:port) and TOPIC_PREFIX in the
// environment; exits non-zero on the first failed check.
//
// This script does not consume (group.js does, in a consumer group): it
// prints (as the last line of stdout, JSON) every message it produced, and
// the pytest side reads them back with kcat and compares.

'use strict'

const assert = require('node:assert/strict')
const { Kafka, CompressionTypes, ConfigResourceTypes, logLevel } = require('kafkajs')

const bootstrap = process.env.BOOTSTRAP || '127.0.0.1:9092'
const prefix = process.env.TOPIC_PREFIX || `kafkajs-${Date.now()}`
const BASE_TS_MS = 1_690_000_000_000

const step = name => process.stderr.write(`kafkajs: ${name}\n`)

async function main() {
  const kafka = new Kafka({
    clientId: 'riffle-compat-kafkajs',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    connectionTimeout: 10000,
    requestTimeout: 30000,
    retry: { retries: 3 },
  })
  const admin = kafka.admin()
  await admin.connect()

  const topics = {
    none: `${prefix}-none`,
    gzip: `${prefix}-gzip`,
    acks: `${prefix}-acks`,
    multi: `${prefix}-multi`,
    doomed: `${prefix}-doomed`,
  }

  step('createTopics')
  const created = await admin.createTopics({
    waitForLeaders: true,
    timeout: 30000,
    topics: [
      { topic: topics.none, numPartitions: 1, replicationFactor: 1 },
      { topic: topics.gzip, numPartitions: 1, replicationFactor: 1 },
      { topic: topics.acks, numPartitions: 1, replicationFactor: 1 },
      {
        topic: topics.multi,
        numPartitions: 3,
        replicationFactor: 1,
        configEntries: [{ name: 'retention.ms', value: '7200000' }],
      },
      { topic: topics.doomed, numPartitions: 1, replicationFactor: 1 },
    ],
  })
  assert.equal(created, true)

  step('createTopics on an existing topic returns false (TOPIC_ALREADY_EXISTS)')
  assert.equal(await admin.createTopics({ topics: [{ topic: topics.none }], waitForLeaders: false }), false)

  step('createTopics validateOnly')
  const validated = `${prefix}-validate-only`
  await admin.createTopics({ validateOnly: true, waitForLeaders: false, topics: [{ topic: validated }] })
  const listed = await admin.listTopics()
  for (const t of Object.values(topics)) assert.ok(listed.includes(t), `${t} missing from listTopics`)
  assert.ok(!listed.includes(validated), 'validateOnly created the topic')

  step('createTopics with a bad name fails')
  await assert.rejects(
    admin.createTopics({ waitForLeaders: false, topics: [{ topic: 'bad name!' }] }),
    err => {
      const types = (err.errors || [err]).map(e => e.type)
      assert.deepEqual(types, ['INVALID_TOPIC_EXCEPTION'], `got ${err}`)
      return true
    },
  )

  step('fetchTopicMetadata')
  const md = await admin.fetchTopicMetadata({ topics: [topics.multi] })
  assert.equal(md.topics.length, 1)
  assert.equal(md.topics[0].name, topics.multi)
  const parts = md.topics[0].partitions.map(p => p.partitionId).sort()
  assert.deepEqual(parts, [0, 1, 2])
  for (const p of md.topics[0].partitions) {
    assert.equal(p.leader, 1)
    assert.deepEqual(p.replicas, [1])
    assert.deepEqual(p.isr, [1])
  }

  step('describeCluster')
  const cluster = await admin.describeCluster()
  assert.equal(cluster.brokers.length, 1)
  assert.equal(cluster.brokers[0].nodeId, 1)
  assert.equal(`${cluster.brokers[0].host}:${cluster.brokers[0].port}`, bootstrap)
  assert.equal(cluster.controller, 1)
  assert.ok(cluster.clusterId)

  step('producer: none and gzip, keys, headers, timestamps')
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  const produced = {}
  for (const [codec, compression] of [['none', CompressionTypes.None], ['gzip', CompressionTypes.GZIP]]) {
    const topic = topics[codec]
    const messages = []
    for (let i = 0; i < 50; i++) {
      messages.push({
        key: `k${i}`,
        value: `kafkajs ${codec} message ${i} ${'v'.repeat(i % 30)}`,
        headers: { origin: 'kafkajs', index: String(i) },
        timestamp: String(BASE_TS_MS + i),
      })
    }
    const res = await producer.send({ topic, compression, acks: -1, messages })
    assert.equal(res.length, 1)
    assert.equal(res[0].errorCode, 0)
    assert.equal(res[0].baseOffset, '0')
    produced[topic] = messages
  }

  step('producer: acks 1 and 0')
  const acksMessages = []
  for (const acks of [1, 0]) {
    const batch = [0, 1, 2].map(i => ({ value: `acks=${acks} #${i}` }))
    await producer.send({ topic: topics.acks, acks, messages: batch })
    acksMessages.push(...batch)
  }
  produced[topics.acks] = acksMessages

  step('producer: explicit partitions')
  await producer.send({
    topic: topics.multi,
    messages: [0, 1, 2].map(p => ({ partition: p, value: `partition ${p}` })),
  })
  await producer.disconnect()

  step('fetchTopicOffsets')
  const offsets = await admin.fetchTopicOffsets(topics.gzip)
  assert.deepEqual(offsets, [{ partition: 0, offset: '50', high: '50', low: '0' }])

  step('fetchTopicOffsetsByTimestamp')
  assert.deepEqual(await admin.fetchTopicOffsetsByTimestamp(topics.none, BASE_TS_MS + 20),
    [{ partition: 0, offset: '20' }])

  step('describeConfigs')
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topics.multi, configNames: ['retention.ms', 'cleanup.policy'] }],
  })
  assert.equal(described.resources.length, 1)
  assert.equal(described.resources[0].errorCode, 0)
  const entries = Object.fromEntries(described.resources[0].configEntries.map(e => [e.configName, e.configValue]))
  assert.deepEqual(entries, { 'retention.ms': '7200000', 'cleanup.policy': 'delete' })

  step('alterConfigs')
  await admin.alterConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topics.multi, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
  })
  const after = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topics.multi, configNames: ['retention.ms'] }],
  })
  assert.equal(after.resources[0].configEntries[0].configValue, '3600000')

  step('createPartitions')
  await admin.createPartitions({ topicPartitions: [{ topic: topics.multi, count: 5 }] })
  const md5 = await admin.fetchTopicMetadata({ topics: [topics.multi] })
  assert.equal(md5.topics[0].partitions.length, 5)

  step('deleteTopicRecords')
  // kafkajs finds partition leaders for deleteTopicRecords in its cached
  // metadata, which the fetchTopicMetadata call above replaced with just
  // topics.multi: load the topic first (the same is needed against Kafka).
  await admin.fetchTopicMetadata({ topics: [topics.none] })
  await admin.deleteTopicRecords({ topic: topics.none, partitions: [{ partition: 0, offset: '10' }] })
  const afterDelete = await admin.fetchTopicOffsets(topics.none)
  assert.deepEqual(afterDelete, [{ partition: 0, offset: '50', high: '50', low: '10' }])

  step('deleteTopics')
  await admin.deleteTopics({ topics: [topics.doomed], timeout: 30000 })
  let gone = false
  for (let i = 0; i < 100 && !gone; i++) {
    gone = !(await admin.listTopics()).includes(topics.doomed)
    if (!gone) await new Promise(r => setTimeout(r, 200))
  }
  assert.ok(gone, `${topics.doomed} still listed after deleteTopics`)

  await admin.disconnect()
  step('done')
  process.stdout.write(JSON.stringify({ topics, produced, deletedBefore: { [topics.none]: 10 } }) + '\n')
}

main().catch(err => {
  process.stderr.write(`kafkajs compatibility check FAILED: ${err && err.stack ? err.stack : err}\n`)
  if (err && typeof err === 'object') process.stderr.write(`error fields: ${JSON.stringify(err)}\n`)
  process.exit(1)
})
