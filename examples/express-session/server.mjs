// Sessions for an express app, kept in Mnemo through connect-memcached.
// Run: MNEMO=127.0.0.1:11211 PORT=3000 node examples/express-session/server.mjs
import express from 'express';
import session from 'express-session';
import connectMemcached from 'connect-memcached';

const MemcachedStore = connectMemcached(session);
const app = express();
app.use(
  session({
    secret: process.env.SESSION_SECRET ?? 'change-me',
    resave: false,
    saveUninitialized: false,
    cookie: { maxAge: 60 * 60 * 1000 },
    store: new MemcachedStore({ hosts: [process.env.MNEMO ?? '127.0.0.1:11211'], prefix: 'sess:' }),
  }),
);
app.get('/', (req, res) => {
  req.session.views = (req.session.views ?? 0) + 1;
  res.json({ id: req.sessionID, views: req.session.views });
});
const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
