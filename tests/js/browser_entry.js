// The browser SDK as a page would load it: @segment/analytics-next from npm, bundled by
// esbuild (tests/ingest/test_sdks.py) into one script that sets window.AnalyticsBrowser.
import { AnalyticsBrowser } from '@segment/analytics-next'

window.AnalyticsBrowser = AnalyticsBrowser
