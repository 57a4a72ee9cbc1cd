/**
 * Where things are in a chunk, and what a chunk reference is.
 *
 * A chunk reference (ref) is a u32: (page index + 1) << 16 | chunk index in the
 * page, so 0 means "none" and a page holds at most 65536 chunks (the smallest
 * chunk is 48 + -n bytes, so 1 MiB pages hold at most ~20k). Up to 65535 pages:
 * 64 GiB of 1 MiB pages. A chunk index rather than a byte offset keeps the
 * limit independent of the page size; its byte offset is index × the page's
 * chunk size (one multiply, one table read).
 *
 * An item's first chunk starts with a 48-byte header of u32 fields (HeaderField
 * indexes, from the chunk's 4-aligned start; chunk sizes are multiples of 8):
 *
 *   0 hash-chain next   1 LRU prev (newer)   2 LRU next (older)   3 last access
 *   4 exptime (0: never)   5 CAS low   6 CAS high   7 client flags
 *   8 value length   9 key hash   10 meta: key length (bits 0-7), LRU id (8-15:
 *   class | HOT/WARM/COLD/TEMP segment, as memcached's slabs_clsid), flag bits (16-31)   11 holds (pins by readers; see SlabArena.pin)
 *
 * then the key bytes at 48, then the value bytes. A chunked item (value past the
 * largest chunk) keeps header and key in its first chunk, the ref of its first
 * data chunk at the next 4-aligned offset after the key, and the value in a
 * chain of data chunks: u32 0 is the next data chunk's ref, u32 1 the previous
 * one's (the header's for the first), u32 2 the header's, u32 10 (meta) has
 * ITEM_DATA_CHUNK set; the value bytes start at DATA_CHUNK_HEADER. The back
 * links let the slab mover (rebalancer.ts) move one data chunk of an item.
 *
 * A chunk on a free list has ITEM_SLABBED in its meta word, u32 0 and 1 are
 * its free-list links (pages.ts).
 */
export const HEADER_BYTES = 48;
export const KEY_OFFSET = 48;

export const H_HASH_NEXT = 0;
export const H_LRU_PREV = 1;
export const H_LRU_NEXT = 2;
export const H_TIME = 3;
export const H_EXPTIME = 4;
export const H_CAS_LOW = 5;
export const H_CAS_HIGH = 6;
export const H_CLIENT_FLAGS = 7;
export const H_VALUE_LENGTH = 8;
export const H_HASH = 9;
export const H_META = 10;
export const H_HOLDS = 11;

/** Flag bits of the meta field (after the >>> 16). */
export const ITEM_LINKED = 1;
export const ITEM_FETCHED = 2;
export const ITEM_STALE = 4;
export const ITEM_TOKEN_SENT = 8;
export const ITEM_KEY_BINARY = 16;
export const ITEM_CHUNKED = 32;
/** Unlinked while held: its chunks go back when the last hold is released. */
export const ITEM_FREE_ON_RELEASE = 64;
/** Freed; guards against double frees. */
export const ITEM_SLABBED = 128;
/** A data chunk of a chunked item, not an item header (a high bit, apart from the item flags). */
export const ITEM_DATA_CHUNK = 0x8000;

/** Data chunk fields (u32 indexes): the previous chunk (or the header), and the header. */
export const D_NEXT = 0;
export const D_PREV = 1;
export const D_HEAD = 2;
/** memcached's ITEM_ACTIVE: hit twice (or once more after it was), so the segmented LRU keeps it out of COLD. */
export const ITEM_ACTIVE = 256;

/**
 * memcached's item_chunk is 48 bytes; a data chunk reserves as much, so that a
 * chunked item takes the same chunks here as in memcached (only u32 0, the
 * next data chunk, is used).
 */
export const DATA_CHUNK_HEADER = 48;

export const MAX_PAGES = 65535;
export const MAX_CHUNKS_PER_PAGE = 65536;

/** memcached's sizeof(item) on 64-bit builds, before the optional CAS. */
const MC_ITEM_HEADER = 48;

/**
 * The bytes memcached charges an item (do_item_alloc: item_make_header(nkey + 1,
 * ...) + CAS): header, key and its NUL, the 4-byte flags suffix when flags are
 * not 0, the value and its "\r\n". Classes are chosen by this figure, not by the
 * smaller layout above, so that an `-m` holds as many items as memcached's.
 */
export function memcachedItemTotal(keyLength: number, valueLength: number, clientFlags: number, useCas: boolean): number {
  return MC_ITEM_HEADER + (useCas ? 8 : 0) + keyLength + 1 + (clientFlags !== 0 ? 4 : 0) + valueLength + 2;
}

/** memcached's header chunk of a chunked item (its htotal): header, key, suffix and one item_chunk. */
export function memcachedChunkedHeaderTotal(keyLength: number, clientFlags: number, useCas: boolean): number {
  return MC_ITEM_HEADER + (useCas ? 8 : 0) + keyLength + 1 + (clientFlags !== 0 ? 4 : 0) + DATA_CHUNK_HEADER;
}

/** Byte offset, in a chunked item's header chunk, of the ref to its first data chunk. */
export function dataRefOffset(keyLength: number): number {
  return (KEY_OFFSET + keyLength + 3) & ~3;
}
