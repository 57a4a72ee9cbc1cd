/**
 * The arena's state as a list of named pieces, so that a warm restart (-e,
 * memory-file.ts) saves and loads whatever the arena holds by walking one list,
 * and a piece added to the arena without a name here is caught by a test
 * (test/warm-restart.test.ts walks the arena for typed arrays not listed).
 */
export type StateArray = Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array;

export type StateEntry =
  /** A number (booleans as 0/1). */
  | { readonly kind: 'scalar'; readonly name: string; get(): number; set(value: number): void }
  /** A typed array whose type and length follow the settings: loaded in place; another length is a mismatch. */
  | { readonly kind: 'array'; readonly name: string; readonly array: StateArray }
  /** A typed array whose length is state (a hash table that doubled), or none (null): replaced on load by a new one. */
  | {
      readonly kind: 'table';
      readonly name: string;
      /** An empty array of the type, of this many elements (on a SharedArrayBuffer). */
      create(length: number): StateArray;
      get(): StateArray | null;
      set(array: StateArray | null): void;
    }
  /** As many byte blocks of one size as the state says (slab pages): streamed, never held in one buffer. */
  | {
      readonly kind: 'blocks';
      readonly name: string;
      readonly blockSize: number;
      blocks(): readonly Uint8Array[];
      /** Replaces the blocks with `count` new zeroed ones and returns them, to be filled. */
      allocate(count: number): readonly Uint8Array[];
    };

/** A scalar entry over an object's numeric field. */
export function scalarField<T extends object, K extends keyof T & string>(name: string, target: T, key: K): StateEntry {
  return {
    kind: 'scalar',
    name,
    get: () => Number(target[key]),
    set: (value: number) => {
      const current = target[key];
      (target as Record<string, unknown>)[key] = typeof current === 'boolean' ? value !== 0 : value;
    },
  };
}

/** An array entry. */
export function fixedArray(name: string, array: StateArray): StateEntry {
  return { kind: 'array', name, array };
}
