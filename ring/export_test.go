package ring

// InNetns lets the tests create their injecting sockets in the namespace
// they capture in.
var InNetns = inNetns

// ReplayBuffers is how many buffers each replay source has: a test that
// wants the steady state must have used each once.
const ReplayBuffers = replayBuffers
