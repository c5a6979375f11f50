package web

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The metrics are the guide's CloudWatch metrics in Prometheus form. One
// rule names them all: CloudWatch's <API>.<Metric> is kvs_<metric> (snake
// case, in base units, _total for counters) with the labels api="<API>" and
// stream="<name>"; ArchivedFragmentsConsumed.<Quota> is
// kvs_archived_fragments_consumed_<quota>_total, its api label saying which
// API consumed the credits. README.md has the whole table.
const metricsNamespace = "kvs"

// Histogram buckets, in seconds.
var (
	latencyBuckets   = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	ingestionBuckets = []float64{.01, .05, .1, .25, .5, 1, 2, 4, 8, 16, 32}
	persistBuckets   = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
)

// apiTraits says which series besides requests, success, latency and
// outgoing bytes an API has.
type apiTraits uint8

const (
	consumesMetadata apiTraits = 1 << iota // fragment-metadata credits
	consumesMedia                          // fragment-media credits
	connection                             // a long connection: latency to the response headers, active connections, connection errors
	ingests                                // PutMedia's incoming bytes, fragments, frames and their latencies
	sendsFragments                         // outgoing fragments and frames
	behindNow                              // GetMedia's MillisBehindNow
)

// traits of the APIs that have more than the common series. Credits follow
// the guide's quota table.
var traits = map[string]apiTraits{
	"PutMedia":                connection | ingests,
	"GetMedia":                connection | sendsFragments | behindNow,
	"GetMediaForFragmentList": consumesMedia | sendsFragments,
	"ListFragments":           consumesMetadata,
	"GetClip":                 consumesMetadata | consumesMedia,
	"GetImages":               consumesMetadata | consumesMedia,
	"GetHLSMediaPlaylist":     consumesMetadata,
	"GetDASHManifest":         consumesMetadata,
	"GetMP4MediaFragment":     consumesMedia,
	"GetTSFragment":           consumesMedia,
}

// metrics holds the server's metric vectors and, per (api, stream), the
// series a request updates, so that a request looks them up once.
type metrics struct {
	reg      *prometheus.Registry
	handler  http.Handler
	requests *prometheus.CounterVec
	success  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	outBytes *prometheus.CounterVec
	metadata *prometheus.CounterVec // ArchivedFragmentsConsumed.Metadata
	media    *prometheus.CounterVec // ArchivedFragmentsConsumed.Media

	connErrors *prometheus.CounterVec
	active     *prometheus.GaugeVec

	inBytes     *prometheus.CounterVec
	inFragments *prometheus.CounterVec
	inFrames    *prometheus.CounterVec
	ingestion   *prometheus.HistogramVec
	persisted   *prometheus.CounterVec
	persist     *prometheus.HistogramVec
	errorAcks   *prometheus.CounterVec

	outFragments *prometheus.CounterVec
	outFrames    *prometheus.CounterVec
	behind       *prometheus.GaugeVec

	series sync.Map // seriesKey -> *apiSeries
}

type seriesKey struct{ api, stream string }

// apiSeries are the series of one (api, stream); those its API does not
// have are nil.
type apiSeries struct {
	traits                  apiTraits
	requests, success       prometheus.Counter
	outBytes                prometheus.Counter
	latency                 prometheus.Observer
	metadata, media         prometheus.Counter
	connErrors              prometheus.Counter
	active                  prometheus.Gauge
	inBytes, inFragments    prometheus.Counter
	inFrames, persisted     prometheus.Counter
	errorAcks               prometheus.Counter
	ingestion, persist      prometheus.Observer
	outFragments, outFrames prometheus.Counter
	behind                  prometheus.Gauge
	labels                  [2]string // api, stream
}

var apiStream = []string{"api", "stream"}

// newMetrics registers the metrics on reg (a new registry with the Go and
// process collectors if nil).
func newMetrics(reg *prometheus.Registry) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &metrics{reg: reg}
	counter := func(name, help string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Name: name, Help: help}, apiStream)
		reg.MustRegister(v)
		return v
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: metricsNamespace, Name: name, Help: help}, apiStream)
		reg.MustRegister(v)
		return v
	}
	histogram := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: metricsNamespace, Name: name, Help: help, Buckets: buckets}, apiStream)
		reg.MustRegister(v)
		return v
	}
	m.requests = counter("requests_total", "Requests of an API (CloudWatch <API>.Requests).")
	m.success = counter("success_total", "Requests that succeeded: a 2xx answer and no error after it (CloudWatch <API>.Success, per request).")
	m.latency = histogram("latency_seconds", "Time from a request's arrival to the end of its response; for PutMedia and GetMedia to the response headers (CloudWatch <API>.Latency).", latencyBuckets)
	m.outBytes = counter("outgoing_bytes_total", "Response body bytes sent, counted as they go out (CloudWatch <API>.OutgoingBytes).")
	m.metadata = counter("archived_fragments_consumed_metadata_total", "Fragment-metadata quota credits consumed (CloudWatch ArchivedFragmentsConsumed.Metadata).")
	m.media = counter("archived_fragments_consumed_media_total", "Fragment-media quota credits consumed (CloudWatch ArchivedFragmentsConsumed.Media).")
	m.connErrors = counter("connection_errors_total", "PutMedia and GetMedia requests refused with an error status (CloudWatch <API>.ConnectionErrors).")
	m.active = gauge("active_connections", "Open PutMedia and GetMedia connections (CloudWatch PutMedia.ActiveConnections).")
	m.inBytes = counter("incoming_bytes_total", "PutMedia body bytes received (CloudWatch PutMedia.IncomingBytes).")
	m.inFragments = counter("incoming_fragments_total", "Complete fragments received (CloudWatch PutMedia.IncomingFragments).")
	m.inFrames = counter("incoming_frames_total", "Frames of complete fragments received (CloudWatch PutMedia.IncomingFrames).")
	m.ingestion = histogram("fragment_ingestion_latency_seconds", "Time from a fragment's first byte to the moment it is complete (CloudWatch PutMedia.FragmentIngestionLatency).", ingestionBuckets)
	m.persisted = counter("persisted_fragments_total", "Fragments made durable and acked PERSISTED.")
	m.persist = histogram("fragment_persist_latency_seconds", "Time from a complete fragment to its PERSISTED ack (CloudWatch PutMedia.FragmentPersistLatency).", persistBuckets)
	m.errorAcks = counter("error_acks_total", "ERROR acks sent (CloudWatch PutMedia.ErrorAckCount).")
	m.outFragments = counter("outgoing_fragments_total", "Fragments sent (CloudWatch GetMedia.OutgoingFragments, GetMediaForFragmentList.OutgoingFragments).")
	m.outFrames = counter("outgoing_frames_total", "Frames of the fragments sent (CloudWatch GetMedia.OutgoingFrames, GetMediaForFragmentList.OutgoingFrames).")
	m.behind = gauge("behind_now_seconds", "Server time minus the server timestamp of the fragment a GetMedia connection sent last (CloudWatch GetMedia.MillisBehindNow).")
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

// seriesOf returns the series of (api, stream), creating them on first use.
func (m *metrics) seriesOf(api, stream string) *apiSeries {
	key := seriesKey{api, stream}
	if v, ok := m.series.Load(key); ok {
		return v.(*apiSeries)
	}
	s := &apiSeries{traits: traits[api], labels: [2]string{api, stream}}
	l := s.labels[:]
	s.requests = m.requests.WithLabelValues(l...)
	s.success = m.success.WithLabelValues(l...)
	s.latency = m.latency.WithLabelValues(l...)
	s.outBytes = m.outBytes.WithLabelValues(l...)
	if s.traits&consumesMetadata != 0 {
		s.metadata = m.metadata.WithLabelValues(l...)
	}
	if s.traits&consumesMedia != 0 {
		s.media = m.media.WithLabelValues(l...)
	}
	if s.traits&connection != 0 {
		s.connErrors = m.connErrors.WithLabelValues(l...)
		s.active = m.active.WithLabelValues(l...)
	}
	if s.traits&ingests != 0 {
		s.inBytes = m.inBytes.WithLabelValues(l...)
		s.inFragments = m.inFragments.WithLabelValues(l...)
		s.inFrames = m.inFrames.WithLabelValues(l...)
		s.ingestion = m.ingestion.WithLabelValues(l...)
		s.persisted = m.persisted.WithLabelValues(l...)
		s.persist = m.persist.WithLabelValues(l...)
		s.errorAcks = m.errorAcks.WithLabelValues(l...)
	}
	if s.traits&sendsFragments != 0 {
		s.outFragments = m.outFragments.WithLabelValues(l...)
		s.outFrames = m.outFrames.WithLabelValues(l...)
	}
	if s.traits&behindNow != 0 {
		s.behind = m.behind.WithLabelValues(l...)
	}
	v, _ := m.series.LoadOrStore(key, s)
	return v.(*apiSeries)
}

// credits adds the fragment credits a request consumed.
func (m *metrics) credits(s *apiSeries, metadata, media int) {
	if metadata > 0 {
		c := s.metadata
		if c == nil { // an API the table does not list
			c = m.metadata.WithLabelValues(s.labels[:]...)
		}
		c.Add(float64(metadata))
	}
	if media > 0 {
		c := s.media
		if c == nil {
			c = m.media.WithLabelValues(s.labels[:]...)
		}
		c.Add(float64(media))
	}
}

// forgetStream drops a deleted stream's series, so that the series of
// deleted streams do not pile up. A new stream of the same name starts at 0.
func (m *metrics) forgetStream(name string) {
	m.series.Range(func(k, _ any) bool {
		if k.(seriesKey).stream == name {
			m.series.Delete(k)
		}
		return true
	})
	match := prometheus.Labels{"stream": name}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.requests, m.success, m.latency, m.outBytes, m.metadata, m.media, m.connErrors, m.active,
		m.inBytes, m.inFragments, m.inFrames, m.ingestion, m.persisted, m.persist, m.errorAcks,
		m.outFragments, m.outFrames, m.behind,
	} {
		v.DeletePartialMatch(match)
	}
}
