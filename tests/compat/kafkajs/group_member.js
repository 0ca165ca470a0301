// One kafkajs consumer-group member, run by tests/compat/test_groups_kafkajs.py.
//
// Environment: BOOTSTRAP (host:port), GROUP, TOPIC, NAME (its client id).
// Prints one JSON line per event on stdout: {"event":"join", memberId,
// assignment: [[topic, partition], ...]} after every rebalance (kafkajs'
// GROUP_JOIN), {"event":"message", partition, offset,
// value} for every message before kafkajs resolves (and so may commit) it,
// and {"event":"closed"} after disconnect() on SIGTERM (a final commit, then
// LeaveGroup).

'use strict'

const { Kafka, logLevel } = require('kafkajs')

const emit = event => process.stdout.write(JSON.stringify(event) + '\n')

async function main() {
  const kafka = new Kafka({
    clientId: process.env.NAME,
    brokers: [process.env.BOOTSTRAP],
    logLevel: logLevel.WARN,
    connectionTimeout: 10000,
    requestTimeout: 30000,
  })
  const consumer = kafka.consumer({
    groupId: process.env.GROUP,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
    retry: { retries: 10 },
  })
  const { GROUP_JOIN, CRASH } = consumer.events
  consumer.on(GROUP_JOIN, e => {
    const assignment = []
    for (const [topic, partitions] of Object.entries(e.payload.memberAssignment)) {
      for (const p of partitions) assignment.push([topic, p])
    }
    assignment.sort((a, b) => (a[0] === b[0] ? a[1] - b[1] : a[0] < b[0] ? -1 : 1))
    emit({ event: 'join', memberId: e.payload.memberId, assignment })
  })
  consumer.on(CRASH, e => emit({ event: 'error', str: String(e.payload.error), fatal: true }))

  let closing = false
  process.on('SIGTERM', async () => {
    if (closing) return
    closing = true
    await consumer.disconnect()
    emit({ event: 'closed' })
    process.exit(0)
  })

  await consumer.connect()
  await consumer.subscribe({ topics: [process.env.TOPIC], fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      emit({ event: 'message', partition, offset: Number(message.offset), value: message.value.toString() })
    },
  })
  emit({ event: 'started' })
}

main().catch(e => {
  process.stderr.write(`group_member.js: ${e.stack || e}\n`)
  process.exit(1)
})
