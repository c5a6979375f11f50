// Package images makes the JPEG and PNG images of GetImages from stored
// H.264 and H.265 frames. It decides which frames a GOP must decode,
// converts them to an Annex B stream, decodes, scales and encodes them
// with ffmpeg run as a separate process (the Go build stays pure Go, and a
// decoder crash costs one batch of images, never the server; processes
// are started in advance for the kinds of images asked for last, and
// warmed with a key frame for batches of key frames alone) and
// keeps the results in a cache bounded by bytes. It
// knows nothing of HTTP; package web maps GetImages onto it.
package images
