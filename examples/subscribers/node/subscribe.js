// Read a da-pipeline discrete-event topic from Node with stock packages only:
// kafkajs, @kafkajs/confluent-schema-registry and lz4js (npm ci in this directory).
//
//   node subscribe.js BOOTSTRAP REGISTRY_URL TOPIC [COUNT] [TIMEOUT_S]
//
// Basic auth for the registry: SCHEMA_REGISTRY_AUTH=user:password. Prints one JSON object a
// line: {"key": ..., "value": {...}}.
'use strict';

const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = require('kafkajs');
const { SchemaRegistry } = require('@kafkajs/confluent-schema-registry');
const lz4 = require('lz4js');

// The pipeline's producers compress with LZ4, which kafkajs leaves to a plug-in codec.
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  compress: async (encoder) => Buffer.from(lz4.compress(encoder.buffer)),
  decompress: async (buffer) => Buffer.from(lz4.decompress(buffer)),
});

async function main() {
  const [bootstrap, registryUrl, topic, countArg, timeoutArg] = process.argv.slice(2);
  const count = Number(countArg || 0);
  const timeoutMs = Number(timeoutArg || 120) * 1000;
  const auth = process.env.SCHEMA_REGISTRY_AUTH;
  const registry = new SchemaRegistry({
    host: registryUrl,
    ...(auth ? { auth: { username: auth.split(':')[0], password: auth.split(':').slice(1).join(':') } } : {}),
  });
  const kafka = new Kafka({ clientId: 'outside-node', brokers: bootstrap.split(','), logLevel: logLevel.ERROR });
  // read committed is kafkajs's default: the pipeline writes in Kafka transactions.
  const consumer = kafka.consumer({ groupId: `outside-node-${process.pid}-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let seen = 0;
  let finish;
  let fail;
  const done = new Promise((resolve, reject) => { finish = resolve; fail = reject; });
  const timer = setTimeout(finish, timeoutMs);
  // A consumer that crashed for good (not one kafkajs restarts) must not look like a quiet topic.
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart) fail(payload.error);
  });
  await consumer.run({
    eachMessage: async ({ message }) => {
      if (count && seen >= count) return;
      const value = await registry.decode(message.value);
      process.stdout.write(JSON.stringify({ key: message.key.toString(), value }) + '\n');
      seen += 1;
      if (count && seen >= count) finish();
    },
  });
  try {
    await done;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
