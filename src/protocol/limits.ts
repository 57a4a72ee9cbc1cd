/** memcached's KEY_MAX_LENGTH: longer keys get CLIENT_ERROR. */
export const KEY_MAX_LENGTH = 250;
