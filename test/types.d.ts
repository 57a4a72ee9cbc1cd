/** connect-memcached ships no types: the part the tests use. */
declare module 'connect-memcached' {
  import type session from 'express-session';
  function connectMemcached(s: typeof session): new (options: { hosts: string[]; prefix?: string }) => session.Store;
  export default connectMemcached;
}
