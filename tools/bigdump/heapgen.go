package main

// Many distinct allocation stacks for the heap profile. A profile of a big service holds
// hundreds of thousands of stacks, 20-30 frames deep; here they come from one recursive
// walk with four call sites per level, the site at each level picked by two bits of a
// hash of the allocation's number, so the paths are distinct both by pc and by source
// line and vary at every depth (as real stacks do, which makes the profile compress as
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
		walk(depth, mix(uint64(i)), i)
	}
}

// mix is the splitmix64 finalizer: consecutive numbers get unrelated paths.
func mix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

//go:noinline
func walk(depth int, path uint64, i int) {
	if depth == 0 {
		allocate(i)
		return
	}
	switch path & 3 {
	case 0:
		walk(depth-1, path>>2, i)
	case 1:
		walk(depth-1, path>>2, i)
	case 2:
		walk(depth-1, path>>2, i)
	default:
		walk(depth-1, path>>2, i)
	}
}

//go:noinline
func allocate(i int) {
	buf := make([]byte, 32+(i%7)*48)
	if i%2 == 0 {
		retained = append(retained, buf)
	}
}
