/*
 * The subcommands of rill http (cli_http in http.c dispatches): each
 * takes the arguments after "http" (argv[0] is "serve" or "get") and
 * returns the exit status.
 */
#ifndef RILL_CLI_HTTP_CMD_H
#define RILL_CLI_HTTP_CMD_H

int cli_http_serve(int argc, char **argv);
int cli_http_get(int argc, char **argv);

#endif
