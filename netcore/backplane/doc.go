// Package backplane joins sockmon nodes through Redis: the client built
// from --redis-url (client.go), and the pieces built on it.
package backplane
