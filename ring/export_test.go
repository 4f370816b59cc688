package ring

// InNetns lets the tests create their injecting sockets in the namespace
// they capture in.
var InNetns = inNetns
