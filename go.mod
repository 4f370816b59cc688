module github.com/tcpsentry/tcpsentry

go 1.26.8

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/gopacket/gopacket v1.7.7 // indirect
)
