// Sends calls to a tend ingest with a real Node SDK from npm, the way an app would.
//
//   node send_node.js '{"sdk": "segment" | "rudderstack", "url": ..., "writeKey": ...,
//                      "calls": [{"method": "track", "message": {...}}, ...]}'
//
// Prints {"errors": [...]}: what the SDK reported (an HTTP error, a refused call).
// Exits 0 once the SDK says everything was flushed; tests/ingest/test_sdks.py reads the events
// back from tend.
'use strict'

const options = JSON.parse(process.argv[2])
const errors = []

async function segment() {
  const { Analytics } = require('@segment/analytics-node')
  const analytics = new Analytics({
    writeKey: options.writeKey,
    host: options.url,
    flushInterval: 200,
    maxRetries: 1,
  })
  analytics.on('error', (err) => errors.push(String(err.reason || err.message || err)))
  analytics.on('http_request', (req) => {
    if (options.verbose) console.error(req.method, req.url)
  })
  for (const call of options.calls) {
    analytics[call.method](call.message)
  }
  await analytics.closeAndFlush({ timeout: 20000 })
}

async function rudderstack() {
  const RudderAnalytics = require('@rudderstack/rudder-sdk-node')
  const client = new RudderAnalytics(options.writeKey, {
    dataPlaneUrl: options.url,
    flushInterval: 200,
    retryCount: 0,
    logLevel: 'error',
    errorHandler: (err) => errors.push(String(err.message || err)),
  })
  for (const call of options.calls) {
    client[call.method](call.message)
  }
  await client.flush()
}

const send = { segment, rudderstack }[options.sdk]
send()
  .then(() => {
    process.stdout.write(JSON.stringify({ errors }) + '\n')
  })
  .catch((err) => {
    process.stdout.write(JSON.stringify({ errors: [...errors, String(err)] }) + '\n')
    process.exitCode = 1
  })
