/*
 * tests/fx_garbage.c — fault injection for the online stages (tests/t_ppo.sh): an extra
 * rank in a PPO launch that joins as a reward server, takes part in the start-up
 * collectives like one, then sends one malformed message with a real tag to a real
 * rank, and waits (the job is expected to abort, naming this rank as the sender).
 *
 *   mpirun ... : -np 1 build/tests/fx_garbage TARGET KIND
 *     TARGET  learner  -> learner rank 0 on TAG_ROLLOUT
 *             reward   -> reward server 0 on TAG_SCORE_REQ
 *     KIND    bytes    -> bytes that are not msgpack at all
 *             version  -> a msgpack map with "v" = 99
 *             lengths  -> a well-formed score_req / rollout whose token bin is cut short
 *
 * It never answers anything; if the job does not abort, the peer timeout
 * (RLHF_PEER_TIMEOUT) ends this rank with an error, so the test sees a failure, not a hang.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "online.h"
#include "mpi_util.h"
#include "msg.h"

int main(int argc, char **argv) {
    MpiRoles roles;
    mpi_roles_init(&argc, &argv, ROLE_REWARD, NULL, &roles);
    MPI_Comm wcomm = online_weights_comm_create(&roles);
    if (argc < 3) mpi_fatal("usage: fx_garbage learner|reward bytes|version|lengths");
    int to_learner = strcmp(argv[1], "learner") == 0;
    int dest = to_learner ? roles.ranks[ROLE_LEARNER][0] : roles.ranks[ROLE_REWARD][0];
    int tag = to_learner ? TAG_ROLLOUT : TAG_SCORE_REQ;
    MsgBuf buf;
    msg_buf_init(&buf);
    if (strcmp(argv[2], "bytes") == 0) {
        static const unsigned char junk[] = {0xc1, 0xff, 0x00, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef};
        msg_buf_reserve(&buf, sizeof junk);
        memcpy(buf.data, junk, sizeof junk);
        buf.len = sizeof junk;
    } else {
        MsgBatch b;
        msg_batch_init(&b);
        int32_t prompt[3] = {1, 2, 3}, resp[2] = {4, 5};
        msg_batch_append_seq(&b, 0, 0, prompt, 3, resp, 2);
        b.has_ref = 1;
        if (to_learner) {
            MsgRolloutInfo info = {0};
            msg_encode_rollout(&buf, 0, &info, &b);
        } else {
            msg_encode_score_req(&buf, 0, 0, 1, &b);
        }
        msg_batch_free(&b);
        if (strcmp(argv[2], "version") == 0) {
            /* the map's first key is "v" (fixstr 0xa1 'v') followed by a positive fixint */
            for (size_t i = 0; i + 2 < buf.len; i++)
                if (buf.data[i] == 0xa1 && buf.data[i + 1] == 'v') {
                    buf.data[i + 2] = 99;
                    break;
                }
        } else {
            buf.len -= 3; /* the last bin is cut short */
        }
    }
    mpi_send_bytes(MPI_COMM_WORLD, dest, tag, buf.data, buf.len);
    fprintf(stderr, "fx_garbage: sent %zu malformed bytes (%s) to world rank %d\n", buf.len,
            argv[2], dest);
    MPI_Status st;
    int tags[1] = {TAG_STOP};
    mpi_wait_any_message(MPI_COMM_WORLD, MPI_ANY_SOURCE, tags, 1, &st);
    msg_buf_free(&buf);
    if (wcomm != MPI_COMM_NULL) MPI_Comm_free(&wcomm);
    mpi_roles_free(&roles);
    return 1;
}
