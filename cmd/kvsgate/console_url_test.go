package main

import (
	"net"
	"testing"
)

// TestConsoleURL: the URL serve prints for the web console.
func TestConsoleURL(t *testing.T) {
	for _, c := range []struct {
		listen, public, want string
	}{
		{"127.0.0.1:8080", "http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"0.0.0.0:8080", "http://0.0.0.0:8080", "http://127.0.0.1:8080"},
		{"[::]:9000", "http://[::]:9000", "http://127.0.0.1:9000"},
		{"0.0.0.0:8080", "https://video.example/kvs/", "https://video.example/kvs"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", c.listen)
		if err != nil {
			t.Fatal(err)
		}
		if got := consoleURL(addr, c.public); got != c.want {
			t.Errorf("consoleURL(%s, %s) = %s, want %s", c.listen, c.public, got, c.want)
		}
	}
}
