// kafkajs (pure JavaScript, classic group protocol) against Runnel: admin
// create, produce with keys and headers, group consume. Prints one JSON line.
const { Kafka, logLevel } = require('kafkajs');
const [bs, topic, n] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const kafka = new Kafka({ brokers: [bs], logLevel: logLevel.NOTHING });
(async () => {
  const admin = kafka.admin(); await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
  await admin.disconnect();
  const p = kafka.producer(); await p.connect();
  await p.send({ topic, acks: -1, messages: Array.from({ length: n }, (_, i) => ({ key: 'k' + i, value: 'v' + i, headers: { i: String(i) } })) });
  await p.disconnect();
  const c = kafka.consumer({ groupId: 'kjs-group' }); await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  const seen = []; let headersOk = true;
  await new Promise((resolve, reject) => {
    setTimeout(() => resolve(), 60000).unref();
    c.run({ eachMessage: async ({ message }) => {
      const v = message.value.toString();
      headersOk = headersOk && message.headers.i.toString() === v.slice(1);
      seen.push(v); if (seen.length === n) resolve();
    } }).catch(reject);
  });
  await c.disconnect();
  console.log(JSON.stringify({ consumed: seen.length, distinct: new Set(seen).size, headersOk }));
})().catch((e) => { console.error(e); process.exit(1); });
