package main

// Many distinct allocation stacks for the heap profile. A profile of a big service holds
// hundreds of thousands of stacks, 20-30 frames deep; here they come from route
// (parks.go), a recursion with four call sites per level, the site at each level picked by
// two bits of a hash of the allocation's number, so the paths are distinct both by pc and
// by source line and vary at every depth (as real stacks do, which makes the profile compress as
// badly as a real one). Half of the allocations stay reachable (in-use), half are
// garbage (alloc only), and the size varies, as in real profiles.

var retained [][]byte

func fillHeap(stacks, depth int) {
	if min := routeDepth(stacks) + 4; depth < min {
		depth = min // 4^depth paths must leave hash collisions negligible
	}
	if depth > 32 {
		depth = 32 // two bits per level of a 64-bit hash
	}
	retained = make([][]byte, 0, stacks/2+1)
	for i := 0; i < stacks; i++ {
		allocating = i
		route(depth, mix(uint64(i)), allocate) // a plain func value: no closure to allocate
	}
}

// mix is the splitmix64 finalizer: consecutive numbers get unrelated paths.
func mix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// allocating is the number of the allocation route is taking to allocate.
var allocating int

//go:noinline
func allocate() {
	i := allocating
	buf := make([]byte, 32+(i%7)*48)
	if i%2 == 0 {
		retained = append(retained, buf)
	}
}
