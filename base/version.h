/*
** The seqlab version and the git commit of the build. Both live in one
** generated file (build/gen/version.c) that make rewrites only when they
** change, so every run records the commit the binary was really built from
** without rebuilding the world on each commit.
*/
#ifndef SL_VERSION_H
#define SL_VERSION_H

extern const char sl_version[];
extern const char sl_git_commit[];

#define SL_VERSION sl_version
#define SL_GIT_COMMIT sl_git_commit

#endif
