package main

import (
	"bytes"
	"context"
	_ "embed"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/kvsgate/kvsgate/fragments/producer"
	"github.com/kvsgate/kvsgate/web"
)

// sampleClip is the demo stream's source; demo/make-sample.sh made it.
//
//go:embed demo/sample.mkv
var sampleClip []byte

// runDemo creates the stream "demo" and feeds it in real time, forever,
// through the server's own PutMedia endpoint (reconnecting if it ends).
func runDemo(ctx context.Context, log *slog.Logger, endpoint string, creds []web.Credentials, region string) {
	o := producer.Options{Endpoint: endpoint, Stream: "demo", Create: true, Realtime: true, Loop: true, RetentionHours: 24, Region: region}
	if len(creds) > 0 {
		o.Credentials = &aws.Credentials{AccessKeyID: creds[0].AccessKeyID, SecretAccessKey: creds[0].SecretAccessKey}
	}
	log.Info("demo: feeding stream 'demo' from the bundled sample clip")
	for ctx.Err() == nil {
		_, err := producer.Put(ctx, bytes.NewReader(sampleClip), o)
		if ctx.Err() != nil {
			return
		}
		log.Warn("demo: PutMedia ended; reconnecting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
